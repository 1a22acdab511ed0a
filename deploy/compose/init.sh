#!/bin/bash
# Certificates, tokens and server configurations of the compose cluster, made once into the
# `config` volume (/etc/ordo) by `ordo certs`; a volume that has them is left as it is.
#
#   certs/ca.pem            the cluster's CA (cluster id "main"); ca.key stays in the volume
#   certs/<node>.pem|.key   ctl-a, ctl-b, watch: server and client, URI ordo:controller:main
#   certs/agent-N.pem|.key  agent-1, agent-2: server, URI ordo:agent:agent-N
#   admin.token             the admin token for people and the CLI (cockpit API)
#   cockpit.token           the cockpit's service token towards the controllers
#   health.token            a viewer token for the controllers' health checks
#   <server>.toml           one configuration per server (deploy/config/ documents every key)
set -euo pipefail

etc=${ORDO_ETC:-/etc/ordo}
certs=$etc/certs
if [ -e "$etc/ready" ]; then
  echo "certificates and configurations exist in $etc"
  exit 0
fi

ordo certs init --dir "$certs" --cluster-id main
for node in ctl-a ctl-b watch; do
  ordo certs issue --dir "$certs" "$node" --dns "$node" --dns localhost --ip 127.0.0.1 \
    --uri ordo:controller:main
done
for agent in agent-1 agent-2; do
  ordo certs issue --dir "$certs" "$agent" --dns "$agent" --uri "ordo:agent:$agent" --server
done

# `ordo certs token` prints "token: ..." and the configuration entry; the token goes to
# FILE, the entry (as a [[tokens]] or [[users]] table) is printed.
token() {
  local role=$1 name=$2 file=$3 table=$4 out
  out=$(ordo certs token --role "$role" --name "$name")
  sed -n 's/^token: //p' <<<"$out" >"$file"
  chmod 0600 "$file"
  sed -n '/^\[\[tokens\]\]/,$p' <<<"$out" | sed "s/^\[\[tokens\]\]/[[$table]]/"
}
controller_tokens=$(token admin cockpit "$etc/cockpit.token" tokens; echo; token viewer health "$etc/health.token" tokens)
admin_user=$(token admin admin "$etc/admin.token" users)

# node id, name, voter
nodes=(1:ctl-a:controller 2:ctl-b:controller 3:watch:watch)
members=""
for n in "${nodes[@]}"; do
  IFS=: read -r id name voter <<<"$n"
  members+="
[[cluster.nodes]]
id = $id
voter = \"$voter\"
raft_address = \"$name:4450\"
api_url = \"https://$name:4443\"
"
done
for n in "${nodes[@]}"; do
  IFS=: read -r id name _ <<<"$n"
  cat >"$etc/$name.toml" <<TOML
# The compose cluster's $name, written by deploy/compose/init.sh.
controller_id = "$name"
cluster_id = "main"
data_dir = "/var/lib/ordo"
listen = "0.0.0.0:4443"

[tls]
certificate = "$certs/$name.pem"
key = "$certs/$name.key"
client_certificate = "$certs/$name.pem"
client_key = "$certs/$name.key"
ca = "$certs/ca.pem"

$controller_tokens

[cluster]
node_id = $id
raft_listen = "0.0.0.0:4450"
$members
TOML
done

for agent in agent-1 agent-2; do
  cat >"$etc/$agent.toml" <<TOML
# The compose cluster's $agent, written by deploy/compose/init.sh.
agent_id = "$agent"
listen = "0.0.0.0:4444"
data_dir = "/var/lib/ordo"

[tls]
certificate = "$certs/$agent.pem"
key = "$certs/$agent.key"
controller_ca = "$certs/ca.pem"
TOML
done

cat >"$etc/cockpit.toml" <<TOML
# The compose cluster's cockpit, written by deploy/compose/init.sh. It serves plain HTTP inside
# the cluster's network; compose publishes it on 127.0.0.1 only.
controllers = ["https://ctl-a:4443", "https://ctl-b:4443"]
controller_ca = "$certs/ca.pem"
controller_token_file = "$etc/cockpit.token"
listen = "0.0.0.0:8080"

$admin_user

[follow]
# Which controller is active, read every 250 ms: the UI shows a failover as it happens.
cluster_poll_ms = 250
TOML

touch "$etc/ready"
echo "certificates, tokens and configurations written to $etc"
