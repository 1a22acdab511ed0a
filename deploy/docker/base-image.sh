#!/usr/bin/env bash
# Makes the Debian base image the runtime stage starts from (`debian:bookworm-slim` unless
# ORDO_BASE_IMAGE names another tag) on a machine that cannot pull images: debootstrap builds
# a minimal bookworm with ca-certificates and tzdata from Debian's packages, and `docker import`
# tags it. Nothing is done while the tag exists, so the image is made once per machine.
# Needs root (debootstrap) and installs debootstrap through apt-get when it is missing.
set -euo pipefail

tag=${ORDO_BASE_IMAGE:-debian:bookworm-slim}
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag exists"
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  echo "installing debootstrap" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "making base image $tag with debootstrap (once per machine)" >&2
debootstrap --variant=minbase --include=ca-certificates,tzdata bookworm "$root" >"$root.log" 2>&1 || {
  tail -n 30 "$root.log" >&2
  rm -f "$root.log"
  exit 1
}
rm -f "$root.log"
# What an image needs no more than a container does: package caches and lists.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["bash"]' \
  - "$tag" >/dev/null
echo "base image $tag made"
