#!/usr/bin/env bash
# Print the Python base image to build ctloop's images on, making it first when needed.
#
#   scripts/base_image.sh ENGINE OFFICIAL STANDIN
#
# 1. OFFICIAL (python:3.12.12-slim-bookworm) when the engine has it or can pull it;
# 2. otherwise STANDIN when it was made before (it is cached in the engine's image store);
# 3. otherwise STANDIN is made now: Debian bookworm minbase (mmdebstrap, from Debian's own
#    packages) with the host's CPython 3.12 in /usr/local, the official image's own layout.
#    Only podman can import it (the engine used where no registry is reachable).
# Everything but the image name goes to stderr.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

engine=${1:?engine} official=${2:?official image} standin=${3:?stand-in image}
PYTHON=${PYTHON:-python3}

have() { "$engine" image inspect "$1" >/dev/null 2>&1; }

if have "$official"; then
  echo "$official"
  exit 0
fi
echo "base: trying to pull $official" >&2
if timeout 120 "$engine" pull -q "$official" >/dev/null 2>&1; then
  echo "$official"
  exit 0
fi
if have "$standin"; then
  echo "base: $official cannot be pulled; using the stand-in $standin built earlier" >&2
  echo "$standin"
  exit 0
fi
[[ "$engine" == podman ]] || die "$official cannot be pulled and $engine cannot import a stand-in (use podman: make images ENGINE=podman)"
command -v mmdebstrap >/dev/null || die "mmdebstrap is missing (make container-tools installs it)"

prefix=$("$PYTHON" -c 'import sys; print(sys.base_prefix)')
version=$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
[[ "$version" == 3.12.* ]] || die "the stand-in base needs a CPython 3.12 on the host, $PYTHON is $version"
[[ -x "$prefix/bin/python3.12" ]] || die "no python3.12 under $prefix"

echo "base: $official cannot be pulled; building the stand-in $standin (bookworm minbase + CPython $version)" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# the runtime libraries of CPython's extension modules, as in the official image
packages=ca-certificates,netbase,tzdata,libssl3,libsqlite3-0,libffi8,libuuid1,libbz2-1.0,libexpat1,liblzma5
packages+=,libncursesw6,libreadline8,zlib1g,libcrypt1,libtirpc3
# no MIRROR argument: mmdebstrap uses Debian's default mirrors (plus updates and security)
# no documentation, manual pages or translations (as Debian's slim images); stripped binaries
mmdebstrap --quiet --variant=minbase --include="$packages" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook="tar -C '$prefix' --exclude='lib/python3.12/test' --exclude='lib/python3.12/idlelib' \
      --exclude='__pycache__' --exclude='lib/python3.12/site-packages' -cf - bin include lib share | tar -C \"\$1/usr/local\" -xf -" \
  --customize-hook="mkdir -p \"\$1/usr/local/lib/python3.12/site-packages\"" \
  --customize-hook="tar -C '$prefix/lib/python3.12/site-packages' --exclude='__pycache__' -cf - \$(cd '$prefix/lib/python3.12/site-packages' && ls -d pip pip-*.dist-info) | tar -C \"\$1/usr/local/lib/python3.12/site-packages\" -xf -" \
  --customize-hook="find \"\$1/usr/local/bin\" -mindepth 1 ! -name 'python3*' ! -name 'pip3*' -delete" \
  --customize-hook="ln -sf python3.12 \"\$1/usr/local/bin/python3\"; ln -sf python3.12 \"\$1/usr/local/bin/python\"" \
  --customize-hook="rm -rf \"\$1\"/usr/local/lib/python3.12/config-3.12-*/*.a" \
  --customize-hook="find \"\$1/usr/local\" -name '*.so*' -type f -exec strip --strip-unneeded {} +" \
  --customize-hook="chroot \"\$1\" ldconfig" \
  --customize-hook="rm -rf \"\$1\"/var/lib/apt/lists/* \"\$1\"/var/cache/apt/*" \
  bookworm "$work/rootfs.tar" >&2

podman import \
  --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change "ENV PYTHON_VERSION=$version" \
  --change 'CMD ["python3"]' \
  --message "stand-in for $official: Debian bookworm minbase + CPython $version" \
  "$work/rootfs.tar" "$standin" >/dev/null
"$engine" run --rm "$standin" python3 -c 'import ssl, sqlite3, ctypes, lzma, bz2, uuid, readline' \
  || die "the stand-in $standin cannot import CPython's standard extension modules"
echo "$standin"
