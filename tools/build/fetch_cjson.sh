#!/usr/bin/env bash
# Fetches cJSON's sources from Debian's source package into DEST (default build/_deps/cjson), for the
# wasm and WASI builds, which cannot link the system libcjson. Idempotent: does nothing when DEST/cJSON.c
# exists. The deb-src entry is derived from the machine's own apt sources (same mirror, same suites), in a
# private apt state directory, so the system's apt configuration is never changed.
set -euo pipefail
dest="${1:-build/_deps/cjson}"
[ -f "$dest/cJSON.c" ] && exit 0
command -v apt-get >/dev/null || { echo "fetch_cjson: apt-get not found; put cJSON.c and cJSON.h (cJSON 1.7.x) in $dest" >&2; exit 1; }
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/sources.list.d"
# deb822 .sources files and one-line .list files: turn each "deb" entry into "deb-src".
{
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && sed -n 's/^[[:space:]]*deb[[:space:]]\+/deb-src /p' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN{RS="";FS="\n"} { t="";u="";s="";c="";k="";
          for(i=1;i<=NF;i++){ if($i ~ /^Types:/) t=$i; if($i ~ /^URIs:/){u=$i; sub(/^URIs:[ ]*/,"",u)}
            if($i ~ /^Suites:/){s=$i; sub(/^Suites:[ ]*/,"",s)} if($i ~ /^Components:/){c=$i; sub(/^Components:[ ]*/,"",c)}
            if($i ~ /^Signed-By:/){k=$i; sub(/^Signed-By:[ ]*/,"",k)} }
          if (t ~ /deb/ && u ~ /debian\.org|ubuntu\.com/) { n=split(s,S," "); for(j=1;j<=n;j++)
            printf "deb-src %s%s %s %s\n", (k!="" ? "[signed-by=" k "] " : ""), u, S[j], c } }' "$f"
  done
} | grep -E 'debian\.org|ubuntu\.com' | sort -u > "$work/sources.list"
[ -s "$work/sources.list" ] || { echo "fetch_cjson: no Debian/Ubuntu apt source found to derive a deb-src entry from" >&2; exit 1; }
opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/sources.list.d"
      -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::archives=$work" -o "APT::Sandbox::User=root" -q)
apt-get "${opts[@]}" update >/dev/null
( cd "$work" && apt-get "${opts[@]}" source --download-only cjson >/dev/null )
orig="$(ls "$work"/cjson_*.orig.tar.* | head -n1)"
mkdir -p "$dest"
tar -xf "$orig" -C "$work"
srcdir="$(find "$work" -maxdepth 2 -name cJSON.c -printf '%h\n' | head -n1)"
cp "$srcdir/cJSON.c" "$srcdir/cJSON.h" "$dest/"
[ -f "$srcdir/LICENSE" ] && cp "$srcdir/LICENSE" "$dest/LICENSE"
echo "fetch_cjson: cJSON sources from $(basename "$orig") in $dest"
