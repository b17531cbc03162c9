#!/bin/sh
# Build the Debian 12 LXD image with cloud-init and an SSH server (unified tarball). cloud-init reads the
# NoCloud seed that LXD renders from the instance's cloud-init.* (or older user.*) keys at create and copy
# time; it also makes each instance's SSH host keys (the image has none, so no two instances share them).
# Usage: build-debian-image.sh OUTPUT.tar.gz
set -eu
out=$1
suite=bookworm
packages=systemd-sysv,cloud-init,python3-cffi-backend,ifupdown,isc-dhcp-client,iproute2,netbase,openssh-server,sudo
# Use the mirror this machine's apt already uses (deb822 or one-line sources).
mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n 1)
if [ -z "$mirror" ]; then
  mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
fi
[ -n "$mirror" ] || { echo "no Debian mirror found in the apt sources" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
chroot "$root" apt-get clean
# sshd starts at boot; its host keys are made per instance by cloud-init (cc_ssh), which runs before it.
chroot "$root" systemctl enable ssh.service >/dev/null 2>&1
rm -f "$root"/etc/ssh/ssh_host_*
rm -rf "$root/var/lib/apt/lists/"* "$root/var/log/"*.log "$root/etc/machine-id" "$root/var/lib/dbus/machine-id"
: > "$root/etc/machine-id"
echo "localhost" > "$root/etc/hostname"
printf 'auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n' > "$root/etc/network/interfaces"
mkdir -p "$root/etc/cloud/cloud.cfg.d" "$root/var/lib/cloud/seed/nocloud-net"
cat > "$root/etc/cloud/cloud.cfg.d/90_polyvirt_lab.cfg" <<'CFG'
datasource_list: [NoCloud, None]
# minbase has no locales package; without this cloud-init's locale module reports an error.
locale: false
system_info:
  network:
    renderers: ['eni']
CFG
mkdir -p "$work/templates"
cat > "$work/templates/meta-data.tpl" <<'TPL'
instance-id: {{ container.name }}
local-hostname: {{ container.name }}
TPL
cat > "$work/templates/user-data.tpl" <<'TPL'
{% if config_get("cloud-init.user-data", "") != "" %}{{ config_get("cloud-init.user-data", "") }}{% else %}{{ config_get("user.user-data", properties.default) }}{% endif %}
TPL
cat > "$work/templates/vendor-data.tpl" <<'TPL'
{% if config_get("cloud-init.vendor-data", "") != "" %}{{ config_get("cloud-init.vendor-data", "") }}{% else %}{{ config_get("user.vendor-data", properties.default) }}{% endif %}
TPL
cat > "$work/templates/network-config.tpl" <<'TPL'
{% if config_get("cloud-init.network-config", "") != "" %}{{ config_get("cloud-init.network-config", "") }}{% else %}{{ config_get("user.network-config", properties.default) }}{% endif %}
TPL
cat > "$work/metadata.yaml" <<META
architecture: $(uname -m)
creation_date: 1700000000
properties:
  os: debian
  release: bookworm
  description: Debian 12 with cloud-init (polyvirt lab)
templates:
  /var/lib/cloud/seed/nocloud-net/meta-data:
    when: [create, copy]
    template: meta-data.tpl
  /var/lib/cloud/seed/nocloud-net/user-data:
    when: [create, copy]
    template: user-data.tpl
    properties:
      default: "#cloud-config\n{}\n"
  /var/lib/cloud/seed/nocloud-net/vendor-data:
    when: [create, copy]
    template: vendor-data.tpl
    properties:
      default: "#cloud-config\n{}\n"
  /var/lib/cloud/seed/nocloud-net/network-config:
    when: [create, copy]
    template: network-config.tpl
    properties:
      default: "version: 1\nconfig:\n  - type: physical\n    name: eth0\n    subnets:\n      - type: dhcp\n"
META
tar -C "$work" --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner --xattrs -czf "$out.tmp" metadata.yaml templates rootfs
mv "$out.tmp" "$out"
