#!/bin/sh
# Build the busybox LXD image (unified tarball) used by fast tests: a static busybox whose init
# brings up every NIC with udhcpc. Usage: build-busybox-image.sh OUTPUT.tar.gz
set -eu
out=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root/bin" "$root/sbin" "$root/etc/init.d" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" \
  "$root/root" "$root/run" "$root/var/run" "$root/usr/share/udhcpc" "$root/mnt"
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -sf /bin/busybox "$root/bin/$applet"
done
ln -sf /bin/busybox "$root/sbin/init"
cat > "$root/etc/inittab" <<'INITTAB'
::sysinit:/etc/init.d/rcS
::shutdown:/bin/umount -a -r
INITTAB
cat > "$root/etc/init.d/rcS" <<'RCS'
#!/bin/sh
mount -t tmpfs tmpfs /tmp 2>/dev/null
ip link set lo up
for dev in /sys/class/net/*; do
  name=${dev##*/}
  [ "$name" = lo ] && continue
  ip link set "$name" up
  udhcpc -b -q -i "$name" -s /usr/share/udhcpc/default.script >/dev/null 2>&1 &
done
RCS
cat > "$root/usr/share/udhcpc/default.script" <<'DHCP'
#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "${router:-}" ] && ip route add default via "${router%% *}" dev "$interface"
    ;;
  deconfig) ip addr flush dev "$interface" ;;
esac
exit 0
DHCP
chmod 0755 "$root/etc/init.d/rcS" "$root/usr/share/udhcpc/default.script"
echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
echo "root:x:0:" > "$root/etc/group"
cat > "$work/metadata.yaml" <<META
architecture: $(uname -m)
creation_date: 1700000000
properties:
  os: busybox
  release: static
  description: busybox (polyvirt lab)
META
tar -C "$work" --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -czf "$out.tmp" metadata.yaml rootfs
mv "$out.tmp" "$out"
