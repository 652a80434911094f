#!/bin/sh
# Install a pinned Blender release into DEST, checked against its sha256. POSIX sh.
#
#   fetch_blender.sh VERSION ARCH SOURCE TABLE DEST
#
#   VERSION  a Blender release, X.Y.Z (e.g. 4.5.14)
#   ARCH     x86_64, aarch64, or auto (this machine's: uname -m)
#   SOURCE   archive: blender.org's release archive (the `blender` executable), unpacked;
#            pypi:    the Blender Foundation's `bpy` wheel (Blender as a Python module),
#                     installed by pip into a venv at DEST (needs python3 -m venv);
#            debian:  the base's own Debian `blender` package (the row's URL field is the
#                     package version, e.g. 4.3.2+dfsg-2), installed by apt, which checks
#                     it and its libraries against Debian's signed index; the .deb is also
#                     checked against the row's sha256 (the one that index gives)
#   TABLE    the checksum table, container/blender-sha256.txt: VERSION ARCH SOURCE SHA256 [URL]
#   DEST     an empty or missing folder
#
# Run by Apptainer.def's %post. Every failure names what to fix and exits 1: an unknown
# architecture or source, a version with no row, a placeholder instead of a sha256, a
# download whose sha256 differs from the row, a Blender that reports another version.
# On success:
#   DEST/BRAAS_BLENDER  "VERSION ARCH SOURCE SHA256 URL"       (becomes the image's labels)
#   DEST/blender.json   how render_task.py starts this Blender ({"kind", "command"}), its
#                       name, and what it can render with: {"devices": ["CPU", ...],
#                       "openimagedenoise": true|false}, as Blender itself says (_cycles)
set -eu

fail() {
    echo "fetch_blender: error: $*" >&2
    exit 1
}

[ "$#" -eq 5 ] || fail "usage: fetch_blender.sh VERSION ARCH SOURCE TABLE DEST"
version=$1
arch=$2
source=$3
table=$4
dest=$5

expr "$version" : '[0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*$' >/dev/null \
    || fail "BLENDER_VERSION '$version' is not a release number X.Y.Z (e.g. 4.5.14)"
series=${version%.*}

machine=$(uname -m)
[ "$arch" = auto ] && arch=$machine
case $arch in
    x86_64 | amd64) arch=x86_64 suffix=linux-x64 wheel_platform=manylinux_2_28_x86_64 deb_arch=amd64 ;;
    aarch64 | arm64) arch=aarch64 suffix=linux-arm64 wheel_platform=manylinux_2_28_aarch64 deb_arch=arm64 ;;
    *) fail "unsupported architecture '$arch': this image is built for x86_64 or aarch64 (BLENDER_ARCH=auto|x86_64|aarch64)" ;;
esac
case $source in
    archive) sha_list="https://download.blender.org/release/Blender$series/blender-$version.sha256" ;;
    pypi) sha_list="https://pypi.org/project/bpy/$version/#files" ;;
    debian) sha_list="the SHA256 field of blender in Debian's signed index (https://deb.debian.org/debian/dists/<release>/main/binary-$deb_arch/Packages.xz)" ;;
    *) fail "unknown BLENDER_SOURCE '$source': use archive (blender.org's release archive), pypi (the bpy wheel) or debian (the base's blender package)" ;;
esac

[ -r "$table" ] || fail "checksum table $table not found"
rows=$(awk -v v="$version" -v a="$arch" -v s="$source" '$1 !~ /^#/ && $1 == v && $2 == a && $3 == s' "$table")
[ -n "$rows" ] || fail "no sha256 pinned for Blender $version on $arch from $source in" \
    "$(basename "$table"): add a row '$version $arch $source <sha256> [url]' (the sha256 is the" \
    "one published at $sha_list)"
[ "$(printf '%s\n' "$rows" | wc -l)" -eq 1 ] || fail "$(basename "$table") has more than one row for Blender $version on $arch from $source"
# shellcheck disable=SC2086 # split the row into its fields
set -- $rows
sha256=$4
url=${5:-}

expr "$sha256" : '[0-9a-f]\{64\}$' >/dev/null \
    || fail "fill in the sha256 of Blender $version for $arch from $source in $(basename "$table"):" \
        "'$sha256' is a placeholder, not 64 lowercase hex digits"
if [ "$source" = debian ]; then
    expr "$url" : "$version"'[+~][A-Za-z0-9.+~-]*$' >/dev/null \
        || fail "the debian row for Blender $version needs the package version as its last" \
            "field (e.g. $version+dfsg-2), not '$url'"
else
    case $url in
        "" | https://* | file://*) ;;
        *) fail "the download URL must be https:// (or file:// for a local copy): $url" ;;
    esac
fi
[ "$arch" = "$machine" ] || [ "$arch:$machine" = aarch64:arm64 ] \
    || fail "BLENDER_ARCH=$arch but this build runs on $machine: build the image on an $arch machine"

mkdir -p "$dest"
[ -z "$(ls -A "$dest")" ] || fail "$dest is not empty"
work=$(mktemp -d "${TMPDIR:-/tmp}/fetch-blender.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ "$source" = archive ]; then
    url=${url:-https://download.blender.org/release/Blender$series/blender-$version-$suffix.tar.xz}
    archive=$work/blender.tar.xz
    echo "fetch_blender: downloading $url"
    curl --fail --silent --show-error --location --retry 3 --proto '=https,file' \
        --proto-redir '=https' --output "$archive" "$url" || fail "could not download $url"
    got=$(sha256sum "$archive" | cut -d' ' -f1)
    [ "$got" = "$sha256" ] || fail "sha256 mismatch for $url: expected $sha256 (pinned in" \
        "$(basename "$table")), got $got. This is not the pinned Blender $version; nothing was installed"
    echo "fetch_blender: sha256 $got matches the pinned value"
    tar -xJf "$archive" -C "$dest" --strip-components=1 --no-same-owner
    [ -x "$dest/blender" ] || fail "the archive $url holds no blender executable at its top level"
    missing=$(ldd "$dest/blender" 2>/dev/null | grep 'not found' || true)
    [ -z "$missing" ] || fail "Blender needs libraries this image lacks; add their Debian" \
        "packages to %post in Apptainer.def: $(echo "$missing" | tr -s ' \t\n' ' ')"
    reported=$("$dest/blender" -b --factory-startup -noaudio --version 2>/dev/null | head -n 1) || true
    printf '{"kind": "executable", "command": ["%s/blender"]}\n' "$dest" >"$dest/blender.json"
elif [ "$source" = debian ]; then
    package="blender=$url"
    echo "fetch_blender: downloading $package ($deb_arch) from the base's Debian archive"
    (cd "$work" && apt-get download "$package") \
        || fail "the base's Debian archive has no $package for $deb_arch (Debian trixie has" \
            "blender 4.3.2+dfsg-2: build with --build-arg DEBIAN_RELEASE=trixie)"
    deb=$(ls "$work"/blender_*.deb)
    got=$(sha256sum "$deb" | cut -d' ' -f1)
    [ "$got" = "$sha256" ] || fail "sha256 mismatch for $(basename "$deb"): expected $sha256" \
        "(pinned in $(basename "$table")), got $got. This is not the pinned package; nothing" \
        "was installed"
    echo "fetch_blender: sha256 $got matches the pinned value"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$deb" \
        || fail "apt could not install $package and its libraries"
    installed=$(command -v blender) || fail "$package installed no blender executable"
    ln -s "$installed" "$dest/blender"
    url="debian:$package"
    reported=$("$dest/blender" -b --factory-startup -noaudio --version 2>/dev/null | head -n 1) || true
    printf '{"kind": "executable", "command": ["%s/blender"]}\n' "$dest" >"$dest/blender.json"
else
    # pip downloads the wheel (from PyPI, or the index PIP_INDEX_URL names) and refuses it
    # unless its sha256 is the pinned one. --no-deps: bpy's declared dependencies (numpy,
    # requests, zstandard, cython) are not needed to render; numpy comes from Debian.
    requirement="bpy==$version"
    [ -n "$url" ] && requirement="bpy @ $url"
    printf '%s --hash=sha256:%s\n' "$requirement" "$sha256" >"$work/requirements.txt"
    python3 -m venv --system-site-packages "$dest" \
        || fail "python3 -m venv failed: the image needs Debian's python3-venv"
    echo "fetch_blender: installing $requirement ($wheel_platform wheel) with pip --require-hashes"
    "$dest/bin/python" -m pip install --no-cache-dir --disable-pip-version-check --no-deps \
        --only-binary=:all: --require-hashes -r "$work/requirements.txt" \
        || fail "pip could not install $requirement with sha256 $sha256 (PyPI publishes bpy" \
            "wheels for Linux x86_64 only; a mismatch means this is not the pinned wheel)"
    echo "fetch_blender: sha256 $sha256 matches the pinned value (checked by pip)"
    url=${url:-pypi:$requirement}
    reported=$("$dest/bin/python" -c 'import bpy; print("Blender", bpy.app.version_string)' 2>/dev/null | tail -n 1) || true
    printf '{"kind": "python", "command": ["%s/bin/python"]}\n' "$dest" >"$dest/blender.json"
fi

case "$reported" in
    "Blender $version" | "Blender $version "*) ;;
    *) fail "the installed Blender reports '$reported', not Blender $version (missing libraries?" \
        "run it by hand in the image to see why)" ;;
esac

# What this build of Blender can render with, as its Cycles says: the GPU back ends it was
# built with that also ship their kernels (Debian's build has CUDA support but no CUDA
# kernels: a render would need nvcc at run time), and OpenImageDenoise. The worker refuses a
# task that asks for more, with why.
capabilities='import glob, json, os, _cycles, cycles
names = ("CUDA", "OPTIX", "HIP", "METAL", "ONEAPI")
built = dict(zip(names, _cycles.get_device_types()))
lib = os.path.join(os.path.dirname(cycles.__file__), "lib")
kernels = {"CUDA": ("kernel_sm_*", "kernel_compute_*"), "OPTIX": ("kernel_optix*",),
           "HIP": ("kernel_gfx*",)}
def has_kernels(name):
    return any(glob.glob(os.path.join(lib, p)) for p in kernels.get(name, ("*",)))
usable = [name for name in names if built.get(name) and
          (name not in kernels or has_kernels(name)) and (name != "OPTIX" or has_kernels("CUDA"))]
print("BRAAS_CAPS " + json.dumps({
    "devices": ["CPU"] + usable,
    "openimagedenoise": bool(getattr(_cycles, "with_openimagedenoise", False))}))'
command=$(python3 -I -c 'import json, sys; print(json.load(open(sys.argv[1]))["command"][0])' "$dest/blender.json")
if [ "$source" = pypi ]; then
    caps=$("$command" -c "import bpy
$capabilities" 2>/dev/null | grep '^BRAAS_CAPS ' | tail -n 1) || true
else
    caps=$("$command" -b --factory-startup -noaudio --python-exit-code 1 \
        --python-expr "$capabilities" 2>/dev/null | grep '^BRAAS_CAPS ' | tail -n 1) || true
fi
[ -n "$caps" ] || fail "Blender $version did not say what it renders with (Cycles' _cycles module)"
python3 -I - "$dest/blender.json" "${caps#BRAAS_CAPS }" "Blender $version ($arch, from $source)" <<'CAPS'
import json, sys
path, caps, name = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
with open(path, encoding="utf-8") as stream:
    blender = json.load(stream)
blender.update(caps, name=name)
with open(path, "w", encoding="utf-8") as stream:
    json.dump(blender, stream)
    stream.write("\n")
CAPS
echo "fetch_blender: it renders on $(python3 -I -c 'import json, sys; b = json.load(open(sys.argv[1])); print(", ".join(b["devices"]), "; OpenImageDenoise:", "yes" if b["openimagedenoise"] else "no")' "$dest/blender.json")"
printf '%s %s %s %s %s\n' "$version" "$arch" "$source" "$sha256" "$url" >"$dest/BRAAS_BLENDER"
echo "fetch_blender: Blender $version ($arch, from $source) is in $dest"
