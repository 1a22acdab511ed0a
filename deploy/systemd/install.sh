#!/usr/bin/env bash
# Installs Ordo on a systemd server: the binaries, the units of this folder, the documented
# example configurations and a dedicated `ordo` user.
#
#   deploy/systemd/install.sh [--bin-dir DIR] [--prefix /usr/local] [--dest-dir ROOT] [--no-user]
#
# --bin-dir   where the built binaries are (default: target/release of this repository;
#             `cargo build --release -p ordo-cli -p ordo-controller -p ordo-agent -p ordo-cockpit-api`)
# --prefix    binaries go to PREFIX/bin, documentation to PREFIX/share/doc/ordo
# --dest-dir  a root to install under (packaging); implies --no-user and no systemctl call
# --no-user   do not create the `ordo` user and group
#
# Configurations already in /etc/ordo are kept: an example is installed only where none is.
# Then: make certificates and tokens (README, "Deploy on servers"), edit /etc/ordo/*.toml, and
# `systemctl enable --now ordo-controller` (and ordo-watch, ordo-agent, ordo-cockpit where they run).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin_dir=$repo/target/release
prefix=/usr/local
dest=
make_user=yes
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) bin_dir=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --dest-dir) dest=$2; make_user=no; shift 2 ;;
    --no-user) make_user=no; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

binaries=(ordo ordo-controller ordo-agent ordo-cockpit)
for b in "${binaries[@]}"; do
  [ -x "$bin_dir/$b" ] || { echo "missing $bin_dir/$b: build it first (see --help)" >&2; exit 1; }
done

units=$dest/etc/systemd/system
etc=$dest/etc/ordo
doc=$dest$prefix/share/doc/ordo
install -d -m 0755 "$dest$prefix/bin" "$units" "$doc/config" "$doc/examples"
install -d -m 0750 "$etc" "$etc/certs"
for b in "${binaries[@]}"; do
  install -m 0755 "$bin_dir/$b" "$dest$prefix/bin/$b"
done
for u in "$here"/*.service; do
  # The units name /usr/local/bin; another prefix is written into them.
  sed "s#/usr/local/#$prefix/#g" "$u" > "$units/$(basename "$u")"
  chmod 0644 "$units/$(basename "$u")"
done
install -m 0644 "$repo"/deploy/config/*.toml "$repo/deploy/config/README.md" "$doc/config/"
install -m 0644 "$repo"/deploy/examples/*.yaml "$doc/examples/"

# Example configurations with the paths of this layout: state in /var/lib/ordo/<role> (the
# units' StateDirectory), certificates in /etc/ordo/certs.
example() {
  local source=$1 target=$2 data=$3
  if [ -e "$etc/$target" ]; then
    echo "kept $etc/$target"
    return
  fi
  sed -e "s#^data_dir = .*#data_dir = \"/var/lib/ordo/$data\"#" \
      -e 's#"\.\./\.\./ordo-data/certs/#"/etc/ordo/certs/#g' \
      -e 's#"\.\./\.\./ordo-data/#"/etc/ordo/#g' \
      "$repo/deploy/config/$source" > "$etc/$target"
  chmod 0640 "$etc/$target"
  echo "wrote $etc/$target (edit it before starting the service)"
}
example controller.toml controller.toml controller
example controller.toml watch.toml watch
example agent.toml agent.toml agent
example cockpit.toml cockpit.toml cockpit

if [ "$make_user" = yes ]; then
  if ! getent group ordo >/dev/null; then groupadd --system ordo; fi
  if ! getent passwd ordo >/dev/null; then
    useradd --system --gid ordo --home-dir /var/lib/ordo --shell /usr/sbin/nologin ordo
  fi
  chown -R root:ordo "$etc"
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
  fi
fi
echo "installed ${binaries[*]} in $prefix/bin and the units in /etc/systemd/system"
