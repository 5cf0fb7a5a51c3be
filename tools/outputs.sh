#!/usr/bin/env bash
# Golden outputs of the offline commands: runs BIN through every offline
# command's documented examples on the committed fixtures (and files derived
# from them: compressed, damaged, without a trailer, an EncryptionConfiguration,
# policies, a PKI made with openssl), and records for each invocation its
# command line, exit code, stdout and stderr in one file of OUTDIR.
#
#     tools/outputs.sh BIN OUTDIR
#     diff -r OUTDIR-of-one-binary OUTDIR-of-another   # nothing: same behaviour
#
# Two runs of one binary give identical OUTDIRs. For that: everything runs in
# one temporary directory whose path is written as <TMP>; TZ, locale, colour,
# terminal width, HOME, caches and stdin are fixed; the derived snapshots have a
# fixed mtime. Content that is random or depends on the clock is normalized
# (and said so in the file's header line `normalized: ...`): PKI material
# (keys, certificates, so their digests and validity dates), everything that
# carries digests of it (bundle archives, SHA256SUMS, manifests), catalog
# entry times, and the UTC time in `*.etcdsnap-bak-<time>` names.
# Commands that need a live server (save, compare, put-back, verify-cluster)
# are not run: the integration tests cover them.
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 BIN OUTDIR" >&2
    exit 2
fi
BIN=$(realpath "$1")
OUT=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$BIN" ] || { echo "$0: $BIN is not an executable" >&2; exit 2; }
for tool in openssl zstd gzip zip sha256sum stat find; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is required" >&2; exit 2; }
done
rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(realpath "$OUT")

W=$(mktemp -d /tmp/etcdsnap-outputs.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/bin" "$W/cache" "$W/home" "$W/tmp" "$W/xdg-data" "$W/xdg-cache"
# The binary is always called `etcdsnap` (clap names it after argv[0]).
ln -s "$BIN" "$W/bin/etcdsnap"
export PATH="$W/bin:$PATH" TZ=UTC LC_ALL=C LANG=C NO_COLOR=1 COLUMNS=100 LINES=40 TERM=dumb
export HOME="$W/home" TMPDIR="$W/tmp" XDG_DATA_HOME="$W/xdg-data" XDG_CACHE_HOME="$W/xdg-cache"
export ETCDSNAP_CACHE_DIR="$W/cache"
unset ETCDSNAP_CATALOG RUST_BACKTRACE RUST_LOG CLICOLOR CLICOLOR_FORCE 2>/dev/null
cd "$W" || exit 2

N=0
# Normalizers: sed programs applied to everything recorded.
NORM_TMP="s#$W#<TMP>#g"
# Backup names carry the UTC time of the move.
NORM_BAK='s/etcdsnap-bak-[0-9TZ:.-]*[0-9]Z?/etcdsnap-bak-<TIME>/g'
# Elapsed times, ages measured against the clock, temporary file names.
NORM_CLOCK='s/in [0-9]+\.[0-9]+ s\b/in <SECS> s/g; s/taken [0-9a-z ]+ ago/taken <AGE> ago/g; s#/\.tmp[A-Za-z0-9]{6}\b#/.tmp<XXXXXX>#g'
# Random or clock-dependent material (PKI, bundles, catalog times).
NORM_RANDOM='s/"added": [0-9]+/"added": <EPOCH>/g; s/[0-9a-fA-F]{16,}/<HEX>/g; s/([0-9A-Fa-f]{2}:){7,}[0-9A-Fa-f]{2}/<HEX>/g; s/[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?( ?UTC|Z|[+-][0-9]{2}:?[0-9]{2})?/<TIME>/g; s/[0-9]{4}-[0-9]{2}-[0-9]{2}/<DATE>/g; s/[0-9]+ days?/<N> days/g; s/age1[0-9a-z]{20,}/<AGE-RECIPIENT>/g'
# Set by a caller for one invocation: RANDOM_OUT=1 (normalize random
# material), STDIN=FILE (instead of /dev/null).
RANDOM_OUT=
STDIN=/dev/null

# The size of a PEM key or certificate varies with its random content (DER
# integers, ECDSA signatures): masked where a line or a JSON object names one.
norm_key_sizes() {
    perl -0pe 's/\b[0-9]+(\s+\S*\.(?:crt|key|pem)\b)/<SIZE>$1/g; s/("path": "[^"]*\.(?:crt|key|pem)",(?:\s*"[a-z]+": [^,{}]*,)*?\s*"size": )[0-9]+/$1<SIZE>/g'
}

normalize() {
    if [ -n "$RANDOM_OUT" ]; then
        sed -E -e "$NORM_TMP" -e "$NORM_BAK" -e "$NORM_CLOCK" -e "$NORM_RANDOM" | norm_key_sizes
    else
        sed -E -e "$NORM_TMP" -e "$NORM_BAK" -e "$NORM_CLOCK"
    fi
}

# run NAME CMD ARGS...: one invocation, recorded as OUTDIR/NNN-NAME.
run() {
    local name=$1
    shift
    N=$((N + 1))
    local f
    f=$(printf '%s/%03d-%s' "$OUT" "$N" "$name")
    "$@" <"$STDIN" >"$W/.stdout" 2>"$W/.stderr"
    local rc=$?
    {
        {
            printf '$'
            printf ' %q' "$@"
            printf '\n'
        } | normalize
        [ "$STDIN" != /dev/null ] && printf 'stdin: %s\n' "$STDIN"
        [ -n "$RANDOM_OUT" ] && printf 'normalized: random/time-dependent material (hex runs, times, dates, day counts)\n'
        printf 'exit: %d\n' "$rc"
        printf -- '--- stdout\n'
        normalize <"$W/.stdout"
        printf -- '--- stderr\n'
        normalize <"$W/.stderr"
    } >"$f"
    RANDOM_OUT=
    STDIN=/dev/null
}

# tree NAME DIR [RANDOM-REGEX]: the files under DIR with type, mode, size and
# sha256 (of the content with the temporary directory's path replaced by
# <TMP>); files whose path matches RANDOM-REGEX get their mode only (their
# size varies with their random content).
tree() {
    local name=$1 dir=$2 random=${3:-}
    N=$((N + 1))
    local f
    f=$(printf '%s/%03d-%s' "$OUT" "$N" "$name")
    {
        printf 'tree of %s\n' "$dir"
        [ -n "$random" ] && printf 'mode only (random content): files matching %s\n' "$random"
        if [ -e "$dir" ]; then
            (cd "$dir" && find . -mindepth 1 | sort) | while IFS= read -r p; do
                local full="$dir/$p" line
                line=$(stat -c '%A %s' "$full")
                if [ -L "$full" ]; then
                    printf '%s %s -> %s\n' "$line" "$p" "$(readlink "$full")"
                elif [ -d "$full" ]; then
                    printf 'd %s %s\n' "$(stat -c '%A' "$full")" "$p"
                elif [ -n "$random" ] && [[ "$p" =~ $random ]]; then
                    printf '%s %s (random)\n' "$(stat -c '%A' "$full")" "$p"
                else
                    printf '%s %s %s\n' "$line" "$p" "$(sed -e "$NORM_TMP" <"$full" | sha256sum | cut -c1-64)"
                fi
            done
        else
            printf 'missing\n'
        fi
    } | normalize >"$f"
}

# file NAME PATH: a file's content (text), normalized.
file() {
    local name=$1 path=$2
    N=$((N + 1))
    local f
    f=$(printf '%s/%03d-%s' "$OUT" "$N" "$name")
    {
        printf 'content of %s\n' "$path"
        [ -n "$RANDOM_OUT" ] && printf 'normalized: random/time-dependent material\n'
        if [ -e "$path" ]; then normalize <"$path"; else printf 'missing\n'; fi
    } >"$f"
    RANDOM_OUT=
}

# ---------------------------------------------------------------- fixtures
FIXED_TIME='2026-01-01 00:00:00 UTC'
for v in 3.4.23 3.5.1 3.6.16 3.7.3; do
    cp "$ROOT/fixtures/etcd-$v.db" "etcd-$v.db"
done
S=etcd-3.5.1.db
zstd -q -19 -o s35.db.zst "$S"
gzip -n -c "$S" >s35.db.gz
touch -d "$FIXED_TIME" "$S"
zip -q -X s35.zip "$S"
# A copy of member/snap/db: no sha256 trailer.
head -c -32 "$S" >nohash.db
# The trailer altered: sha256 mismatch only.
cp "$S" badhash.db
printf '\x00\x00\x00\x00' | dd of=badhash.db bs=1 seek=$(($(stat -c %s "$S") - 4)) conv=notrunc status=none
# A page of the bbolt file overwritten (damaged structure and trailer).
cp "$S" damaged.db
head -c 4096 /dev/zero | dd of=damaged.db bs=4096 seek=3 conv=notrunc status=none
# The meta pages overwritten.
cp "$S" nometa.db
head -c 8192 /dev/zero | dd of=nometa.db bs=1 seek=0 conv=notrunc status=none
head -c 50000 "$S" >truncated.db
: >empty.db
printf 'this is not a snapshot\n' >garbage.db
mkdir adir
# An EncryptionConfiguration (fixed key material).
cat >enc.yaml <<'EOF'
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets, configmaps]
    providers:
      - aescbc:
          keys:
            - name: key1
              secret: c2VjcmV0IGlzIHNlY3VyZSwgb3IgaXMgaXQ/IDMyIGI=
      - identity: {}
EOF
printf 'not: [an, encryption, config\n' >bad-enc.yaml
cat >policy.yaml <<'EOF'
minObjects: {configmaps: 2, deployments.apps: 1}
minNamespaces: 2
requiredNamespaces: [default, kube-system]
requiredObjects: [deployments.apps/default/web, namespaces/default]
valuesDecode: true
noUnencryptedSecrets: true
minBytes: 1024
maxBytes: 100000000
minRevision: 10
maxRevision: 1000
maxAge: 26h
EOF
cat >policy-fail.yaml <<'EOF'
minObjects: {nodes: 3, widgets.example.com: 5, nosuchthings: 1}
requiredNamespaces: [default, prod]
requiredObjects: [deployments.apps/kube-system/coredns]
encryptionKeys: [key2]
minRevision: 100
EOF
printf 'minObjects: {nodes: 1}\nnoSuchRule: true\n' >policy-unknown.yaml
printf 'minObjects: [\n' >policy-broken.yaml
for f in ./*.db ./*.zst ./*.gz ./*.zip ./*.yaml; do touch -d "$FIXED_TIME" "$f"; done

# ---------------------------------------------------------------- top level
run help etcdsnap --help
run help-short etcdsnap -h
run version etcdsnap --version
run no-args etcdsnap
run bad-command etcdsnap frobnicate
for c in status verify check catalog ls get history index hashkv inspect decode diff restore pki bundle install completions; do
    run "help-$c" etcdsnap "$c" --help
done
for c in "catalog add" "catalog list" "catalog show" "catalog check" "catalog forget" "pki check" "pki issue" "bundle inspect" "bundle extract"; do
    # shellcheck disable=SC2086
    run "help-${c// /-}" etcdsnap $c --help
done

# ---------------------------------------------------------------- status
for v in 3.4.23 3.5.1 3.6.16 3.7.3; do
    run "status-$v" etcdsnap status "etcd-$v.db"
    run "status-$v-table" etcdsnap status "etcd-$v.db" -w table
    run "status-$v-json" etcdsnap status "etcd-$v.db" -w json
    run "status-$v-fields" etcdsnap status "etcd-$v.db" -w fields
done
for e in 3.4 3.5 3.6 3.7; do
    run "status-as-$e" etcdsnap status "$S" --etcd-version "$e" -w table
done
run status-zst etcdsnap status s35.db.zst -w table
run status-gz etcdsnap status s35.db.gz
run status-zip etcdsnap status s35.zip -w json
STDIN=$S run status-stdin etcdsnap status -
run status-nohash etcdsnap status nohash.db
run status-damaged etcdsnap status damaged.db
run status-missing etcdsnap status missing.db
run status-dir etcdsnap status adir
run status-empty etcdsnap status empty.db
run status-garbage etcdsnap status garbage.db
run status-bad-format etcdsnap status "$S" -w yaml

# ---------------------------------------------------------------- verify
for v in 3.4.23 3.5.1 3.6.16 3.7.3; do
    run "verify-$v" etcdsnap verify "etcd-$v.db"
    run "verify-$v-json" etcdsnap verify "etcd-$v.db" -w json
done
run verify-deep etcdsnap verify --deep etcd-3.7.3.db
run verify-deep-json etcdsnap verify --deep "$S" -w json
run verify-deep-enc etcdsnap verify --deep "$S" --encryption-config enc.yaml
run verify-quiet etcdsnap verify "$S" -q
run verify-nohash etcdsnap verify nohash.db
run verify-badhash etcdsnap verify badhash.db
run verify-badhash-json etcdsnap verify badhash.db -w json
run verify-damaged etcdsnap verify damaged.db
run verify-damaged-quiet etcdsnap verify damaged.db -q
run verify-damaged-quiet-json etcdsnap verify damaged.db -q -w json
run verify-nometa etcdsnap verify nometa.db
run verify-truncated etcdsnap verify truncated.db
run verify-empty etcdsnap verify empty.db
run verify-garbage etcdsnap verify garbage.db
run verify-missing etcdsnap verify missing.db
run verify-zst etcdsnap verify s35.db.zst
run verify-prefix etcdsnap verify --deep "$S" --prefix /kubernetes.io
run verify-bad-enc etcdsnap verify --deep "$S" --encryption-config bad-enc.yaml
run verify-bad-flag etcdsnap verify "$S" --frobnicate

# ---------------------------------------------------------------- inspect
for v in 3.4.23 3.5.1 3.6.16 3.7.3; do
    run "inspect-$v" etcdsnap inspect "etcd-$v.db"
done
run inspect-json etcdsnap inspect etcd-3.7.3.db -w json
run inspect-top etcdsnap inspect "$S" --top 3
run inspect-ns etcdsnap inspect "$S" -n kube-system
run inspect-ns-json etcdsnap inspect "$S" -n default -w json
run inspect-prefix etcdsnap inspect "$S" --prefix /kubernetes.io
run inspect-damaged etcdsnap inspect damaged.db
run inspect-missing etcdsnap inspect missing.db

# ---------------------------------------------------------------- ls
for v in 3.4.23 3.5.1 3.6.16 3.7.3; do
    run "ls-$v" etcdsnap ls "etcd-$v.db"
done
run ls-json etcdsnap ls etcd-3.7.3.db -w json
run ls-sort-key etcdsnap ls "$S" --sort key
run ls-resource etcdsnap ls "$S" --resource configmaps
run ls-resource-short etcdsnap ls "$S" --resource deploy -n default
run ls-resource-crd etcdsnap ls etcd-3.7.3.db --resource widgets.example.com
run ls-ns etcdsnap ls "$S" -n kube-system
run ls-prefix-arg etcdsnap ls "$S" /registry/configmaps/
run ls-deleted etcdsnap ls "$S" --deleted
run ls-deleted-prefix etcdsnap ls "$S" /registry/configmaps/ --deleted -w json
run ls-revision etcdsnap ls "$S" --revision 38
run ls-revision-json etcdsnap ls "$S" --revision 40 -w json
run ls-revision-compacted etcdsnap ls "$S" --revision 5
run ls-revision-future etcdsnap ls "$S" --revision 9999
run ls-enc etcdsnap ls "$S" /registry/secrets/ --encryption-config enc.yaml --sort key
run ls-unknown-resource etcdsnap ls "$S" --resource nosuchthings
run ls-etcd-prefix etcdsnap ls "$S" --prefix /kubernetes.io
run ls-zst etcdsnap ls s35.db.zst -n default
run ls-damaged etcdsnap ls damaged.db
run ls-bad-sort etcdsnap ls "$S" --sort size

# ---------------------------------------------------------------- get
run get-cm etcdsnap get "$S" configmap app-config -n default
run get-cm-json etcdsnap get "$S" configmap app-config -n default -o json
run get-cm-key etcdsnap get "$S" /registry/configmaps/default/app-config
run get-deploy-apply etcdsnap get "$S" deploy web -n default --for-apply
run get-deploy-apply-owner etcdsnap get "$S" deploy web -n default --for-apply --keep-owner-references
run get-pod-deleted etcdsnap get "$S" pod web-0 --deleted
run get-pod-deleted-json etcdsnap get "$S" /registry/pods/default/web-0 --deleted -o json
run get-pod-deleted-apply etcdsnap get "$S" pod web-0 --deleted --for-apply
run get-pod-not-deleted etcdsnap get "$S" pod web-0
run get-secret etcdsnap get "$S" secret bootstrap-token -n kube-system
run get-secret-show etcdsnap get "$S" secret bootstrap-token -n kube-system --show-secrets
run get-secret-raw etcdsnap get "$S" secret bootstrap-token -n kube-system -o raw --show-secrets
run get-secret-raw-hidden etcdsnap get "$S" secret bootstrap-token -n kube-system -o raw
run get-secret-enc etcdsnap get "$S" secret bootstrap-token -n kube-system --encryption-config enc.yaml
run get-crd etcdsnap get "$S" customresourcedefinitions widgets.example.com
run get-cr etcdsnap get "$S" widgets.example.com w1
run get-cr-cbor etcdsnap get etcd-3.7.3.db widgets.example.com w2 -o json
run get-revision etcdsnap get "$S" /registry/configmaps/bulk/cm-00 --revision 40 -o json
run get-revision-compacted etcdsnap get "$S" /registry/configmaps/bulk/cm-00 --revision 20
run get-node etcdsnap get etcd-3.4.23.db node node-1
run get-lease etcdsnap get etcd-3.6.16.db leases.coordination.k8s.io node-1 -n kube-node-lease
run get-event etcdsnap get etcd-3.6.16.db events web-0.1
run get-plain etcdsnap get "$S" /plain/text-key
run get-plain-raw etcdsnap get "$S" /plain/text-key -o raw
run get-notfound etcdsnap get "$S" configmap nosuch -n default
run get-unknown-resource etcdsnap get "$S" nosuchthings x
run get-no-index etcdsnap get "$S" configmap coredns -n kube-system --no-index
run get-all-cm etcdsnap get "$S" configmaps --all
run get-all-cm-ns-json etcdsnap get etcd-3.7.3.db configmaps --all -n big -o json
run get-all-secrets etcdsnap get "$S" secrets --all
run get-all-pods-deleted etcdsnap get "$S" pods --all --deleted
run get-zst etcdsnap get s35.db.zst configmap app-config -n default
run get-damaged etcdsnap get damaged.db configmap app-config -n default
run get-missing etcdsnap get missing.db configmap app-config

# ---------------------------------------------------------------- history
run history-key etcdsnap history "$S" /registry/configmaps/bulk/cm-00
run history-key-json etcdsnap history "$S" /registry/configmaps/bulk/cm-00 -w json
run history-resource etcdsnap history "$S" deploy web -n default
run history-deleted etcdsnap history "$S" pod web-0
run history-37 etcdsnap history etcd-3.7.3.db configmaps cm-0 -n big
run history-notfound etcdsnap history "$S" /registry/nosuch
run history-no-index etcdsnap history etcd-3.4.23.db /registry/configmaps/default/app-config --no-index

# ---------------------------------------------------------------- index
run index-cache etcdsnap index etcd-3.6.16.db
run index-beside etcdsnap index etcd-3.4.23.db --beside
mkdir idx
run index-out etcdsnap index s35.db.zst -o idx/s35.etcdsnap-index
run index-out-again etcdsnap index s35.db.zst -o idx/s35.etcdsnap-index
run index-refuse etcdsnap index "$S" -o policy.yaml
run index-damaged etcdsnap index damaged.db -o idx/damaged.idx
tree index-files idx
run get-with-index etcdsnap get etcd-3.4.23.db configmap app-config -n default

# ---------------------------------------------------------------- hashkv
for v in 3.4.23 3.5.1 3.6.16 3.7.3; do
    run "hashkv-$v" etcdsnap hashkv "etcd-$v.db"
done
run hashkv-rev etcdsnap hashkv "$S" --revision 38
run hashkv-rev-old etcdsnap hashkv "$S" --revision 30
run hashkv-rev-json etcdsnap hashkv "$S" --revision 40 -w json
run hashkv-table etcdsnap hashkv "$S" -w table
run hashkv-351 etcdsnap hashkv "$S" --server-version 3.5.1
run hashkv-3423 etcdsnap hashkv etcd-3.4.23.db --server-version 3.4.23 --revision 45
run hashkv-compacted etcdsnap hashkv "$S" --revision 9
run hashkv-future etcdsnap hashkv "$S" --revision 9999
run hashkv-bad-version etcdsnap hashkv "$S" --server-version 3.5
run hashkv-damaged etcdsnap hashkv damaged.db

# ---------------------------------------------------------------- decode
mkdir values
etcdsnap get "$S" /registry/deployments/default/web -o raw --show-secrets >values/deploy.bin 2>/dev/null
etcdsnap get "$S" /registry/secrets/kube-system/bootstrap-token -o raw --show-secrets >values/secret.bin 2>/dev/null
etcdsnap get "$S" /registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com -o raw >values/crd.bin 2>/dev/null
etcdsnap get etcd-3.7.3.db /registry/example.com/widgets/default/w2 -o raw >values/cbor.bin 2>/dev/null
etcdsnap get "$S" /registry/services/specs/default/kubernetes -o raw >values/svc.bin 2>/dev/null
head -c 40 values/deploy.bin >values/truncated.bin
tree decode-values values
run decode-yaml etcdsnap decode values/deploy.bin
run decode-json etcdsnap decode values/deploy.bin -o json
run decode-apply etcdsnap decode values/deploy.bin --for-apply
run decode-apply-owner etcdsnap decode values/deploy.bin --for-apply --keep-owner-references
run decode-svc-apply etcdsnap decode values/svc.bin --for-apply
run decode-secret etcdsnap decode values/secret.bin
run decode-secret-show etcdsnap decode values/secret.bin --show-secrets -o json
run decode-crd-json etcdsnap decode values/crd.bin
run decode-cbor etcdsnap decode values/cbor.bin
run decode-cbor-json etcdsnap decode values/cbor.bin -o json
STDIN=values/deploy.bin run decode-stdin etcdsnap decode
STDIN=values/cbor.bin run decode-stdin-dash etcdsnap decode - -o json
run decode-truncated etcdsnap decode values/truncated.bin
run decode-garbage etcdsnap decode garbage.db
run decode-empty etcdsnap decode empty.db
run decode-missing etcdsnap decode values/missing.bin

# ---------------------------------------------------------------- diff
run diff-34-35 etcdsnap diff etcd-3.4.23.db etcd-3.5.1.db
run diff-35-36 etcdsnap diff etcd-3.5.1.db etcd-3.6.16.db
run diff-35-36-stat etcdsnap diff etcd-3.5.1.db etcd-3.6.16.db --stat
run diff-35-36-names etcdsnap diff etcd-3.5.1.db etcd-3.6.16.db --name-only
run diff-35-36-json etcdsnap diff etcd-3.5.1.db etcd-3.6.16.db -w json
run diff-35-36-stat-json etcdsnap diff etcd-3.5.1.db etcd-3.6.16.db --stat -w json
run diff-35-36-color etcdsnap diff etcd-3.5.1.db etcd-3.6.16.db --color always
run diff-36-37 etcdsnap diff etcd-3.6.16.db etcd-3.7.3.db --rewritten --all-fields
run diff-same etcdsnap diff "$S" "$S"
run diff-same-rewritten etcdsnap diff "$S" s35.db.zst --rewritten --name-only
run diff-resource etcdsnap diff etcd-3.5.1.db etcd-3.6.16.db --resource configmaps -n big
run diff-keyprefix etcdsnap diff etcd-3.5.1.db etcd-3.6.16.db /registry/events/
run diff-revisions etcdsnap diff "$S" --from-revision 38 --to-revision 48
run diff-revisions-stat etcdsnap diff "$S" --from-revision 38 --to-revision 48 --stat
run diff-revisions-guide etcdsnap diff "$S" --from-revision 36 --to-revision 48 --stat
run diff-revisions-ns etcdsnap diff "$S" --from-revision 38 --to-revision 48 -n bulk --name-only
run diff-revisions-secrets etcdsnap diff "$S" --from-revision 38 --show-secrets -U 1
run diff-revisions-prefix etcdsnap diff "$S" /registry/configmaps/ --from-revision 38 -w json
run diff-revisions-compacted etcdsnap diff "$S" --from-revision 5 --to-revision 48
run diff-damaged etcdsnap diff damaged.db "$S"
run diff-missing etcdsnap diff "$S" missing.db
run diff-usage etcdsnap diff "$S"

# ---------------------------------------------------------------- check
run check-default etcdsnap check "$S" --taken-at 2026-01-01T01:00:00Z
run check-all etcdsnap check etcd-3.4.23.db etcd-3.5.1.db etcd-3.6.16.db etcd-3.7.3.db --taken-at 2026-01-01T01:00:00Z
run check-policy etcdsnap check "$S" --policy policy.yaml --taken-at 2026-01-01T01:00:00Z
run check-policy-json etcdsnap check "$S" --policy policy.yaml --taken-at 2026-01-01T01:00:00Z -w json
run check-policy-junit etcdsnap check "$S" etcd-3.7.3.db --policy policy.yaml --taken-at 2026-01-01T01:00:00Z -w junit
run check-policy-old etcdsnap check "$S" --policy policy.yaml --taken-at 2025-01-01T00:00:00Z
run check-policy-fail etcdsnap check "$S" --policy policy-fail.yaml --taken-at 2026-01-01T01:00:00Z
run check-policy-fail-junit-out etcdsnap check "$S" --policy policy-fail.yaml --taken-at 2026-01-01T01:00:00Z --junit-out check.xml
file check-junit-out check.xml
run check-enc etcdsnap check "$S" --encryption-config enc.yaml --taken-at 2026-01-01T01:00:00Z -w json
run check-unknown-rule etcdsnap check "$S" --policy policy-unknown.yaml
run check-broken-policy etcdsnap check "$S" --policy policy-broken.yaml
run check-missing-policy etcdsnap check "$S" --policy nosuch.yaml
run check-damaged etcdsnap check damaged.db "$S" --taken-at 2026-01-01T01:00:00Z
run check-damaged-junit etcdsnap check damaged.db --taken-at 2026-01-01T01:00:00Z -w junit
run check-garbage etcdsnap check garbage.db
run check-missing etcdsnap check missing.db
run check-bad-taken-at etcdsnap check "$S" --taken-at yesterday

# ---------------------------------------------------------------- catalog
C=cat/catalog.redb
run catalog-list-none etcdsnap catalog list --catalog "$C"
RANDOM_OUT=1 run catalog-add-34 etcdsnap catalog add etcd-3.4.23.db --catalog "$C" --label cluster=demo
RANDOM_OUT=1 run catalog-add-35 etcdsnap catalog add etcd-3.5.1.db --catalog "$C" --label cluster=demo
RANDOM_OUT=1 run catalog-add-again etcdsnap catalog add etcd-3.5.1.db --catalog "$C" --label cluster=demo
RANDOM_OUT=1 run catalog-add-other etcdsnap catalog add etcd-3.6.16.db etcd-3.7.3.db --catalog "$C" --label cluster=other
RANDOM_OUT=1 run catalog-add-damaged etcdsnap catalog add damaged.db --catalog "$C"
RANDOM_OUT=1 run catalog-list etcdsnap catalog list --catalog "$C"
RANDOM_OUT=1 run catalog-list-json etcdsnap catalog list --catalog "$C" -w json
RANDOM_OUT=1 run catalog-list-label etcdsnap catalog list --catalog "$C" --label cluster=demo
SHA35=$(sha256sum etcd-3.5.1.db | cut -c1-12)
SHA34=$(sha256sum etcd-3.4.23.db | cut -c1-64)
RANDOM_OUT=1 run catalog-show etcdsnap catalog show "$SHA35" --catalog "$C"
RANDOM_OUT=1 run catalog-show-json etcdsnap catalog show "$SHA35" --catalog "$C" -w json
run catalog-show-none etcdsnap catalog show 0000000000 --catalog "$C"
run catalog-check etcdsnap catalog check --catalog "$C"
run catalog-check-label etcdsnap catalog check --catalog "$C" --label cluster=demo --max-drop 10%
run catalog-check-json etcdsnap catalog check --catalog "$C" -w json
run catalog-check-junit etcdsnap catalog check --catalog "$C" -w junit
run catalog-check-bad-drop etcdsnap catalog check --catalog "$C" --max-drop lots
RANDOM_OUT=1 run catalog-forget etcdsnap catalog forget "$SHA34" --catalog "$C"
run catalog-forget-again etcdsnap catalog forget "$SHA34" --catalog "$C"
RANDOM_OUT=1 run catalog-list-after etcdsnap catalog list --catalog "$C"
run catalog-foreign etcdsnap catalog list --catalog garbage.db
RANDOM_OUT=1 run catalog-env-add env ETCDSNAP_CATALOG="$W/cat/env.redb" etcdsnap catalog add "$S"
RANDOM_OUT=1 run catalog-xdg-add etcdsnap catalog add etcd-3.4.23.db --label cluster=xdg
RANDOM_OUT=1 run check-catalog etcdsnap check etcd-3.6.16.db --catalog cat/check.redb --label cluster=prod --taken-at 2026-01-01T01:00:00Z
RANDOM_OUT=1 run check-catalog-junit etcdsnap check etcd-3.7.3.db --catalog cat/check.redb --label cluster=prod --taken-at 2026-01-01T02:00:00Z -w junit --max-drop 5%
tree catalog-files cat 'redb$'

# ---------------------------------------------------------------- restore
IC3=m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380,m3=https://10.0.0.3:2380
run restore-dry etcdsnap restore "$S" --dry-run --initial-cluster m1=http://127.0.0.1:2380
run restore-dry-json etcdsnap restore "$S" --dry-run --initial-cluster "$IC3" --initial-cluster-token prod-restore-1 -w json
run restore-dry-member etcdsnap restore "$S" --dry-run --name m1 --out-dir r0 --initial-cluster "$IC3"
run restore-dry-37 etcdsnap restore etcd-3.7.3.db --dry-run --target-version 3.6
run restore-dry-34-up etcdsnap restore etcd-3.4.23.db --dry-run --target-version 3.5 -w json
run restore-dry-bump etcdsnap restore "$S" --dry-run --bump-revision 1000 --mark-compacted
run restore-bump-alone etcdsnap restore "$S" --dry-run --bump-revision 1000
run restore-suggest etcdsnap restore "$S" --suggest-bump --live-revision 183200
run restore-suggest-json etcdsnap restore "$S" --suggest-bump --live-revision 100 -w json
run restore-bad-ic etcdsnap restore "$S" --dry-run --initial-cluster m1
run restore-bad-target etcdsnap restore etcd-3.4.23.db --dry-run --target-version 3.7
run restore-nohash etcdsnap restore nohash.db --dry-run
run restore-nohash-skip etcdsnap restore nohash.db --dry-run --skip-hash-check
run restore-damaged etcdsnap restore damaged.db --out-dir rd
tree restore-damaged-tree rd
run restore-all etcdsnap restore "$S" --out-dir r1 --initial-cluster "$IC3" --initial-cluster-token prod-restore-1
tree restore-all-tree r1
file restore-all-env-m1 r1/m1.env
run restore-one etcdsnap restore "$S" --name m1 --initial-cluster m1=http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 --data-dir r2/etcd
tree restore-one-tree r2
run restore-one-again etcdsnap restore "$S" --name m1 --initial-cluster m1=http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 --data-dir r2/etcd
run restore-one-force etcdsnap restore etcd-3.6.16.db --name m1 --initial-cluster m1=http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 --data-dir r2/etcd --force
tree restore-one-force-tree r2
run restore-default etcdsnap restore etcd-3.4.23.db --out-dir r3 --bump-revision 500 --mark-compacted --clear-alarms -w json
tree restore-default-tree r3
run restore-37-down etcdsnap restore etcd-3.7.3.db --out-dir r4 --target-version 3.6 --wal-dir r4/wal --name default
tree restore-37-down-tree r4
run status-restored etcdsnap status r1/m1.etcd/member/snap/db -w table
run verify-restored etcdsnap verify r1/m1.etcd/member/snap/db

# ---------------------------------------------------------------- pki (openssl)
# Key material is random: outputs are normalized, file trees list size/mode.
mkpki() {
    local d=$1 algo=$2 ip=$3
    mkdir -p "$d/etcd"
    (
        cd "$d/etcd" || exit 1
        local new
        if [ "$algo" = rsa ]; then new=(-newkey rsa:2048 -nodes); else new=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes); fi
        openssl req -x509 "${new[@]}" -keyout ca.key -out ca.crt -days 3650 -subj /CN=etcd-ca 2>/dev/null
        printf 'subjectAltName=IP:%s,IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' "$ip" >ext.cnf
        for n in server peer healthcheck-client; do
            openssl req "${new[@]}" -keyout "$n.key" -out "$n.csr" -subj "/CN=$n" 2>/dev/null
            openssl x509 -req -in "$n.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$n.crt" -days 365 -extfile ext.cnf 2>/dev/null
        done
        rm -f ./*.csr ./*.srl ext.cnf
        chmod 600 ./*.key
    )
}
mkpki pki rsa 10.0.0.1
mkpki pki-ec ec 127.0.0.1
RANDOM_OUT=1 run pki-check etcdsnap pki check pki
RANDOM_OUT=1 run pki-check-ic etcdsnap pki check pki --initial-cluster "$IC3"
RANDOM_OUT=1 run pki-check-ic-one etcdsnap pki check pki --initial-cluster m1=https://10.0.0.1:2380 -w json
RANDOM_OUT=1 run pki-check-client-urls etcdsnap pki check pki --initial-cluster m1=https://10.0.0.1:2380 --client-urls m1=https://etcd-1.example:2379
RANDOM_OUT=1 run pki-check-at etcdsnap pki check pki --at 2040-06-01T00:00:00Z -w json
RANDOM_OUT=1 run pki-check-etcd-subdir etcdsnap pki check pki/etcd --initial-cluster m1=https://10.0.0.1:2380
RANDOM_OUT=1 run pki-check-ec etcdsnap pki check pki-ec --initial-cluster m1=https://127.0.0.1:2380
run pki-check-empty etcdsnap pki check adir
run pki-check-missing etcdsnap pki check nosuch-pki
run pki-check-bad-at etcdsnap pki check pki --at tomorrow
RANDOM_OUT=1 run pki-issue etcdsnap pki issue --ca-dir pki --initial-cluster "$IC3" --out new-pki
tree pki-issue-tree new-pki '.'
RANDOM_OUT=1 run pki-issue-exists etcdsnap pki issue --ca-dir pki --initial-cluster m1=https://10.0.0.9:2380 --out new-pki -w json
RANDOM_OUT=1 run pki-issue-ec etcdsnap pki issue --ca-dir pki-ec --initial-cluster m1=https://10.0.0.9:2380 --out new-pki-ec --days 30 -w json
RANDOM_OUT=1 run pki-issue-force etcdsnap pki issue --ca-dir pki-ec --initial-cluster m1=https://10.0.0.9:2380 --out new-pki-ec --force
tree pki-issue-force-tree new-pki-ec '.'
RANDOM_OUT=1 run pki-check-issued etcdsnap pki check new-pki --initial-cluster "$IC3"
run pki-issue-no-ca etcdsnap pki issue --ca-dir adir --initial-cluster m1=https://10.0.0.9:2380 --out x-pki

# ---------------------------------------------------------------- bundle, install
RANDOM_OUT=1 run bundle-dry etcdsnap bundle "$S" --pki new-pki --out bundles --initial-cluster "$IC3" --initial-cluster-token prod-restore-1 --dry-run
RANDOM_OUT=1 run bundle-dry-json etcdsnap bundle "$S" --pki new-pki --out bundles --initial-cluster "$IC3" --initial-cluster-token prod-restore-1 --dry-run -w json
RANDOM_OUT=1 run bundle etcdsnap bundle "$S" --pki new-pki --out bundles --initial-cluster "$IC3" --initial-cluster-token prod-restore-1 --owner 2001:2001
tree bundle-tree bundles '.'
for m in m1 m2 m3; do
    N=$((N + 1))
    { printf 'entries of bundles/%s.tar.zst\n' "$m"; zstd -dc "bundles/$m.tar.zst" | tar -tvf - --numeric-owner --full-time | awk '{print $1, $2, $3, $6}' | sort -k4 | norm_key_sizes; } >"$(printf '%s/%03d-bundle-entries-%s' "$OUT" "$N" "$m")"
done
RANDOM_OUT=1 run bundle-again etcdsnap bundle "$S" --pki new-pki --out bundles --initial-cluster "$IC3" --initial-cluster-token prod-restore-1
RANDOM_OUT=1 run bundle-inspect etcdsnap bundle inspect bundles
RANDOM_OUT=1 run bundle-inspect-json etcdsnap bundle inspect bundles/m1.tar.zst -w json
RANDOM_OUT=1 run bundle-extract etcdsnap bundle extract bundles/m2.tar.zst --start-files --out start-m2
tree bundle-extract-tree start-m2
file bundle-extract-env start-m2/etcd.env
file bundle-extract-yaml start-m2/etcd.yaml
printf 'correct horse battery staple\n' >pass.txt
RANDOM_OUT=1 run bundle-encrypted etcdsnap bundle etcd-3.6.16.db --pki new-pki --out bundles-enc --initial-cluster m1=https://10.0.0.1:2380 --initial-cluster-token t --passphrase-file pass.txt
tree bundle-encrypted-tree bundles-enc '.'
RANDOM_OUT=1 run bundle-inspect-encrypted etcdsnap bundle inspect bundles-enc --passphrase-file pass.txt
run bundle-inspect-encrypted-nokey etcdsnap bundle inspect bundles-enc
RANDOM_OUT=1 run bundle-badpki etcdsnap bundle "$S" --pki new-pki --out bundles-bad --initial-cluster m1=https://10.9.9.9:2380 --initial-cluster-token t --dry-run
RANDOM_OUT=1 run bundle-37-noimage etcdsnap bundle etcd-3.7.3.db --pki new-pki --out bundles-37 --initial-cluster m1=https://10.0.0.1:2380 --initial-cluster-token t --dry-run
run bundle-nopki etcdsnap bundle "$S" --pki adir --out bundles-x --initial-cluster m1=https://10.0.0.1:2380 --initial-cluster-token t
run bundle-damaged etcdsnap bundle damaged.db --pki new-pki --out bundles-x --initial-cluster m1=https://10.0.0.1:2380 --initial-cluster-token t
run bundle-inspect-missing etcdsnap bundle inspect nosuch-bundles
RANDOM_OUT=1 run install-dry etcdsnap install bundles/m1.tar.zst --root img --dry-run
RANDOM_OUT=1 run install-dry-json etcdsnap install bundles/m1.tar.zst --root img --dry-run --as-member m1 -w json
RANDOM_OUT=1 run install-dry-wrong-member etcdsnap install bundles/m1.tar.zst --root img --dry-run --as-member m2
RANDOM_OUT=1 run install-dry-encrypted etcdsnap install bundles-enc/m1.tar.zst.age --passphrase-file pass.txt --root img --dry-run
mkdir lone
cp bundles/m3.tar.zst lone/
RANDOM_OUT=1 run install-dry-nosums etcdsnap install lone/m3.tar.zst --root img --dry-run
SUM3=$(grep ' m3.tar.zst$' bundles/SHA256SUMS | cut -c1-64)
RANDOM_OUT=1 run install-dry-sha etcdsnap install lone/m3.tar.zst --root img --dry-run --sha256 "$SUM3" --as-member m3
RANDOM_OUT=1 run install-dry-badsha etcdsnap install lone/m3.tar.zst --root img --dry-run --sha256 0000000000000000000000000000000000000000000000000000000000000000
cp bundles/m1.tar.zst lone/m1.tar.zst
printf 'garbage' | dd of=lone/m1.tar.zst bs=1 seek=100 conv=notrunc status=none
grep ' m1.tar.zst$' bundles/SHA256SUMS >lone/SHA256SUMS
RANDOM_OUT=1 run install-dry-tampered etcdsnap install lone/m1.tar.zst --root img --dry-run
run install-missing etcdsnap install nosuch.tar.zst --root img --dry-run
tree install-dry-wrote-nothing img
RANDOM_OUT=1 run install etcdsnap install bundles/m2.tar.zst --root img2 --owner 0:0
tree install-tree img2 'pki/'
RANDOM_OUT=1 run install-again etcdsnap install bundles/m2.tar.zst --root img2 --owner 0:0
RANDOM_OUT=1 run install-force etcdsnap install bundles/m2.tar.zst --root img2 --owner 0:0 --force -w json

# ---------------------------------------------------------------- completions
for sh in bash elvish fish powershell zsh; do
    run "completions-$sh" etcdsnap completions "$sh"
done
run completions-bad etcdsnap completions tcsh

# The inputs were never modified.
N=$((N + 1))
{
    printf 'sha256 of the inputs after every command\n'
    sha256sum etcd-*.db s35.* nohash.db badhash.db damaged.db nometa.db truncated.db enc.yaml policy*.yaml
} >"$(printf '%s/%03d-inputs-unchanged' "$OUT" "$N")"

echo "$0: $N records in $OUT" >&2
