#!/usr/bin/env bash
# Usage: hack/build-traefik.sh VERSION   (e.g. v3.7.13)
#
# Builds the Traefik binary of VERSION from the Go module proxy into a cache keyed
# by version, and prints its path as the last line on stdout (progress goes to
# stderr). A second run finds the binary and returns at once. Cold: about 7 min
# and 3 GB of RAM on 2 cores.
#
# github.com/traefik/traefik/v3 cannot be `go install`ed from the proxy:
#  - its go.mod replaces github.com/traefik/traefik/dynamic/ext with ./pkg/config/dynamic/ext,
#    a nested module that is neither in the module zip nor on the proxy;
#  - the proxy refuses the containous/go-http-auth pseudo-version it pins, and the
#    SDKs of 13 lego DNS providers.
# So a throw-away wrapper module requires Traefik at VERSION and
#  - supplies dynamic/ext itself (two empty extension points, as upstream has them),
#  - replaces go-http-auth with an older commit of the same containous fork,
#  - replaces lego with a local copy of the version Traefik requires, minus the DNS
#    providers whose SDKs the proxy refuses (only ACME DNS-01 with those is lost),
#  - copies Traefik's other replace and exclude directives (gorilla/mux, tencentcloud).
set -euo pipefail

if [ "$#" -ne 1 ] || [[ "$1" != v[0-9]* ]]; then
  echo "usage: $0 VERSION   (e.g. v3.7.13)" >&2
  exit 2
fi
version="$1"
cache="${EDGE_OPERATOR_CACHE:-$HOME/.cache/edge-operator}"
bin_dir="$cache/traefik-$version/bin"
bin="$bin_dir/traefik"

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.traefik-$version.lock"
if ! flock -n 9; then
  echo "waiting for another build of traefik $version (lock $cache/.traefik-$version.lock)" >&2
  flock 9
fi
if [ -x "$bin" ]; then # built by whoever held the lock
  echo "$bin"
  exit 0
fi

echo "building traefik $version into $bin_dir (cold: about 7 min on 2 cores)" >&2
major="${version#v}"
major="${major%%.*}"
traefik_mod="github.com/traefik/traefik/v$major"

# Pinned, as the proxy refuses the pseudo-version Traefik pins (a 2026 commit of the
# fork): this older commit has the same API (CheckSecret, RequireAuthStale), which
# upstream abbot/go-http-auth v0.4.0 lacks.
http_auth_fork="github.com/containous/go-http-auth v0.4.1-0.20200324110947-a37a7636d23e"

# The lego DNS providers whose SDK modules the proxy refuses (403 "not available"),
# found with `go mod download -json all` in lego v5.4.1 (Traefik v3.7.13):
#   edgedns      github.com/akamai/AkamaiOPEN-edgegrid-golang/v13
#   azion        github.com/aziontech/azionapi-go-sdk
#   dnsimple     github.com/dnsimple/dnsimple-go/v9
#   alidns       github.com/go-acme/alidns-20150109/v5
#   aliesa       github.com/go-acme/esa-20240910/v3
#   tencentcloud github.com/go-acme/tencentclouddnspod
#   edgeone      github.com/go-acme/tencentedgdeone
#   huaweicloud  github.com/huaweicloud/huaweicloud-sdk-go-v3
#   oraclecloud  github.com/nrdcg/oci-go-sdk/{common,dns}/v1065
#   regfish      github.com/regfish/regfish-dnsapi-go
#   sakuracloud  github.com/sacloud/sacloud-sdk-go
#   ucloud       github.com/ucloud/ucloud-sdk-go
#   yandexcloud  github.com/yandex-cloud/go-sdk/services/dns
refused_dns_providers=(edgedns azion dnsimple alidns aliesa tencentcloud edgeone huaweicloud
  oraclecloud regfish sakuracloud ucloud yandexcloud)

# go_mod_field MODULE@VERSION FIELD: a field of `go mod download -json` (Dir, GoMod).
go_mod_field() {
  local json
  json="$(go mod download -json "$1")" || {
    echo "$json" >&2
    return 1
  }
  sed -nE "s/^\s*\"$2\": \"(.*)\",?$/\1/p" <<<"$json"
}

# Directives of a go.mod, one a line with the keyword dropped, from both the
# one-line and the block form; comments stripped.
directives() { # KEYWORD GO.MOD
  awk -v kw="$1" '
    { sub(/\/\/.*/, "") }
    $1 == kw && $2 == "(" { block = 1; next }
    block && $1 == ")" { block = 0; next }
    block && NF { $1 = $1; print; next }
    $1 == kw && NF > 1 { $1 = ""; sub(/^ /, ""); print }
  ' "$2"
}

work="$cache/build/traefik-$version"
if [ -e "$work" ]; then
  chmod -R u+w "$work" # the lego copy comes read-only from the module cache
  rm -rf "$work"
fi
mkdir -p "$work" "$bin_dir"
cd "$work"

upstream_mod="$(go_mod_field "$traefik_mod@$version" GoMod)"
upstream_dir="$(go_mod_field "$traefik_mod@$version" Dir)"
[ -f "$upstream_dir/pkg/version/version.go" ] || {
  echo "no $traefik_mod/pkg/version in $upstream_dir" >&2
  exit 1
}

# lego: the newest major Traefik requires (v3.7 also requires lego/v4, for a test).
read -r lego_mod lego_version < <(directives require "$upstream_mod" |
  awk '$1 ~ /^github\.com\/go-acme\/lego(\/v[0-9]+)?$/ { print $1, $2 }' | sort -V | tail -n 1)
[ -n "${lego_mod:-}" ] || {
  echo "no github.com/go-acme/lego requirement in $upstream_mod" >&2
  exit 1
}
echo "  copying $lego_mod $lego_version without ${#refused_dns_providers[@]} DNS providers" >&2
cp -r "$(go_mod_field "$lego_mod@$lego_version" Dir)" lego
chmod -R u+w lego
providers_alt="$(IFS='|'; echo "${refused_dns_providers[*]}")"
for p in "${refused_dns_providers[@]}"; do
  [ -d "lego/providers/dns/$p" ] || {
    echo "lego $lego_version has no DNS provider $p" >&2
    exit 1
  }
  rm -rf "lego/providers/dns/$p"
done
# The generated registry imports every provider and has one two-line case each:
#	case "alidns":
#		return alidns.NewDNSProvider()
sed -i -E \
  -e "\#^\s*\"$lego_mod/providers/dns/($providers_alt)\"\$#d" \
  -e "/^\s*case .*:\$/{N;/\n\s*return ($providers_alt)\.NewDNSProvider\(\)\$/d}" \
  lego/providers/dns/zz_gen_dns_providers.go
if grep -qE "\b($providers_alt)\." lego/providers/dns/zz_gen_dns_providers.go; then
  echo "could not remove the refused DNS providers from lego/providers/dns/zz_gen_dns_providers.go" >&2
  exit 1
fi
# The copy's go.mod stays as it is: `go mod tidy` there would fetch the go.mod files
# of the refused SDKs, which the proxy refuses too, while the wrapper's pruned module
# graph never reads them.

mkdir ext
printf 'module github.com/traefik/traefik/dynamic/ext\n\ngo 1.24\n' >ext/go.mod
cat >ext/ext.go <<'EOF'
// Package ext stands in for Traefik's pkg/config/dynamic/ext module, which is not
// published: extension points embedded in dynamic.HTTPConfiguration and dynamic.Router.
package ext

// HTTP is a dynamic.HTTP extension.
type HTTP struct{}

// Router is a dynamic.Router extension.
type Router struct{}
EOF

{
  echo "module edge-operator.local/traefik-build"
  echo
  directives go "$upstream_mod" | sed 's/^/go /'
  echo
  echo "require $traefik_mod $version"
  echo
  echo "replace ("
  echo "	github.com/traefik/traefik/dynamic/ext => ./ext"
  echo "	$lego_mod => ./lego"
  directives replace "$upstream_mod" | while IFS= read -r r; do
    old="${r%% => *}" new="${r#* => }"
    case "${old%% *} => $new" in
      */go-http-auth\ =\>*) echo "	$old => $http_auth_fork" ;;
      "github.com/traefik/traefik/dynamic/ext => "*) ;; # ./ext above
      *" => ."* | *" => /"*)
        echo "unexpected local replace in $upstream_mod: $r" >&2
        exit 1
        ;;
      *) echo "	$r" ;;
    esac
  done
  echo ")"
  directives exclude "$upstream_mod" | sed 's/^/exclude /'
} >go.mod
sed 's/^/  | /' go.mod >&2

# Stamp the version as upstream's Makefile does (-X .../pkg/version.Version=$(VERSION)).
echo "  go build $traefik_mod/cmd/traefik" >&2
GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod" CGO_ENABLED=0 go build -trimpath \
  -ldflags="-s -w -X $traefik_mod/pkg/version.Version=$version" \
  -o "$bin.tmp" "$traefik_mod/cmd/traefik"

out="$("$bin.tmp" version)"
if ! grep -qE "^Version:\s+$version\$" <<<"$out"; then
  echo "$bin.tmp version does not report $version:" >&2
  echo "$out" >&2
  exit 1
fi
mv "$bin.tmp" "$bin"
echo "built $bin" >&2
echo "$bin"
