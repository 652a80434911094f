#!/bin/sh
# Download a pinned Blender release archive, check its sha256, unpack it. POSIX sh.
#
#   fetch_blender.sh VERSION ARCH TABLE DEST
#
#   VERSION  a Blender release, X.Y.Z (e.g. 4.5.14)
#   ARCH     x86_64, aarch64, or auto (this machine's: uname -m)
#   TABLE    the checksum table, container/blender-sha256.txt: VERSION ARCH SHA256 [URL] rows
#   DEST     an empty or missing folder; Blender is unpacked into it (DEST/blender)
#
# Run by Apptainer.def's %post. Every failure names what to fix and exits 1: an unknown
# architecture, a version with no row, a placeholder instead of a sha256, an archive whose
# sha256 differs from the row. On success DEST/BRAAS_BLENDER holds "VERSION ARCH SHA256 URL".
set -eu

fail() {
    echo "fetch_blender: error: $*" >&2
    exit 1
}

[ "$#" -eq 4 ] || fail "usage: fetch_blender.sh VERSION ARCH TABLE DEST"
version=$1
arch=$2
table=$3
dest=$4

expr "$version" : '[0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*$' >/dev/null \
    || fail "BLENDER_VERSION '$version' is not a release number X.Y.Z (e.g. 4.5.14)"
series=${version%.*}

machine=$(uname -m)
[ "$arch" = auto ] && arch=$machine
case $arch in
    x86_64 | amd64) arch=x86_64 suffix=linux-x64 ;;
    aarch64 | arm64) arch=aarch64 suffix=linux-arm64 ;;
    *) fail "unsupported architecture '$arch': this image is built for x86_64 or aarch64 (BLENDER_ARCH=auto|x86_64|aarch64)" ;;
esac
name=blender-$version-$suffix.tar.xz

[ -r "$table" ] || fail "checksum table $table not found"
rows=$(awk -v v="$version" -v a="$arch" '$1 !~ /^#/ && $1 == v && $2 == a' "$table")
[ -n "$rows" ] || fail "no sha256 pinned for Blender $version on $arch in $(basename "$table"):" \
    "add a row '$version $arch <sha256> [url]' (for blender.org archives the sha256 is the one in" \
    "https://download.blender.org/release/Blender$series/blender-$version.sha256)"
[ "$(printf '%s\n' "$rows" | wc -l)" -eq 1 ] || fail "$(basename "$table") has more than one row for Blender $version on $arch"
# shellcheck disable=SC2086 # split the row into its fields
set -- $rows
sha256=$3
url=${4:-https://download.blender.org/release/Blender$series/$name}

expr "$sha256" : '[0-9a-f]\{64\}$' >/dev/null \
    || fail "fill in the sha256 of Blender $version for $arch in $(basename "$table"): '$sha256' is a" \
        "placeholder, not 64 lowercase hex digits"
case $url in
    https://* | file://*) ;;
    *) fail "the archive URL must be https:// (or file:// for a local copy): $url" ;;
esac
[ "$arch" = "$machine" ] || [ "$arch:$machine" = aarch64:arm64 ] \
    || fail "BLENDER_ARCH=$arch but this build runs on $machine: build the image on an $arch machine"

mkdir -p "$dest"
[ -z "$(ls -A "$dest")" ] || fail "$dest is not empty"
work=$(mktemp -d "${TMPDIR:-/tmp}/fetch-blender.XXXXXX")
trap 'rm -rf "$work"' EXIT
archive=$work/$name
echo "fetch_blender: downloading $url"
curl --fail --silent --show-error --location --retry 3 --proto '=https,file' \
    --proto-redir '=https' --output "$archive" "$url" || fail "could not download $url"
got=$(sha256sum "$archive" | cut -d' ' -f1)
[ "$got" = "$sha256" ] || fail "sha256 mismatch for $url: expected $sha256 (pinned in" \
    "$(basename "$table")), got $got. This is not the pinned Blender $version; nothing was installed"
echo "fetch_blender: sha256 $got matches the pinned value"
tar -xJf "$archive" -C "$dest" --strip-components=1 --no-same-owner
[ -x "$dest/blender" ] || fail "the archive $url holds no blender executable at its top level"
printf '%s %s %s %s\n' "$version" "$arch" "$sha256" "$url" >"$dest/BRAAS_BLENDER"
echo "fetch_blender: Blender $version ($arch) is in $dest"
