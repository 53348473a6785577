#!/usr/bin/env bash
# The release runbook's verification commands (seeds 000 "Release GO/NO-GO Runbook", the curl/psql/alembic
# lines of its Migrations, Jobs, Health and Smoke sections, plus the checklist's backup-marker, security-header
# and anonymous/wrong-password lines) as one shell script - what an operator types by hand today - CORRECTED
# for the service as it really runs:
#   - admin calls need `X-Auth-MFA: true` (the reverse proxy adds it); a literal `curl -u` gets 401;
#   - /readyz has no `.jobs`/`.database` keys: the checks are in `.checks[]` (db, migrations, jobs);
#   - retention/cleanup answers six counters (not `{deleted}`); export-dead-letter is an object {items,total};
#     queue/photos is an object; the metrics CSV starts `range_start,` (no `metric,from,to,value` header);
#   - the lead smoke needs address, estimate_snapshot (the whole estimate answer) and preferred_dates (the runbook's
#     payload gets 422);
#   - `SELECT polname FROM pg_policies` fails: the view's column is `policyname`;
#   - `SET LOCAL` only works inside a transaction block; psql does not take a `postgresql+psycopg://` URL.
#
# Every check prints `CHECK <criterion> PASS|FAIL <what>`; the exit code is the number of failed checks (capped).
#
# Environment: API_BASE, ADMIN_BASIC_USERNAME, ADMIN_BASIC_PASSWORD, DISPATCHER_BASIC_USERNAME,
# DISPATCHER_BASIC_PASSWORD, DATABASE_URL (the application role's URL), ORG_ID (the default org),
# RAW_ALEMBIC=cli (default: `alembic heads` / `alembic current`, as the runbook says, with ALEMBIC_CONFIG and the
# environment alembic needs) or RAW_ALEMBIC=sql (the version table read with psql and compared with EXPECTED_HEAD).
set -u
: "${API_BASE:?}" "${ADMIN_BASIC_USERNAME:?}" "${ADMIN_BASIC_PASSWORD:?}" "${DATABASE_URL:?}"
DISPATCHER_BASIC_USERNAME=${DISPATCHER_BASIC_USERNAME:-$ADMIN_BASIC_USERNAME}
DISPATCHER_BASIC_PASSWORD=${DISPATCHER_BASIC_PASSWORD:-$ADMIN_BASIC_PASSWORD}
ORG_ID=${ORG_ID:-00000000-0000-0000-0000-000000000001}
RAW_ALEMBIC=${RAW_ALEMBIC:-cli}
PSQL_URL=${DATABASE_URL/+psycopg2:\/\//://}
PSQL_URL=${PSQL_URL/+psycopg:\/\//://}
MFA=(-H "X-Auth-MFA: true")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
started=$EPOCHREALTIME

check() {  # check <criterion> <what> <command...>: PASS when the command exits 0
  local criterion=$1 what=$2
  shift 2
  if "$@" >/dev/null 2>&1; then
    passed=$((passed + 1)); echo "CHECK $criterion PASS $what"
  else
    failed=$((failed + 1)); echo "CHECK $criterion FAIL $what"
  fi
}

req() {  # req <method> <path> [curl args...]: status in $tmp/code, body in $tmp/body, headers in $tmp/headers
  local method=$1 path=$2
  shift 2
  curl -sS --max-time 10 -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' -X "$method" "$@" "$API_BASE$path" \
    >"$tmp/code" 2>/dev/null || echo 000 >"$tmp/code"
}
status_is() { [ "$(cat "$tmp/code")" = "$1" ]; }
body_jq() { jq -e "$1" "$tmp/body"; }
header_has() { grep -qi "^$1" "$tmp/headers"; }
admin() { req "$1" "$2" -u "$ADMIN_BASIC_USERNAME:$ADMIN_BASIC_PASSWORD" "${MFA[@]}" "${@:3}"; }

# --- Health
req GET /healthz
check health.liveness "GET /healthz 200 {status: ok}" eval 'status_is 200 && body_jq ".status == \"ok\""'
check headers.security "nosniff, X-Frame-Options DENY, Referrer-Policy no-referrer" eval \
  'header_has "X-Content-Type-Options: nosniff" && header_has "X-Frame-Options: DENY" && header_has "Referrer-Policy: no-referrer"'
req GET /readyz
check health.readiness "GET /readyz 200, ok true, every checks[].ok" eval 'status_is 200 && body_jq ".ok == true and all(.checks[]; .ok == true)"'
check migrations.readyz "readyz migrations_current" body_jq '.checks[] | select(.name == "migrations") | .detail.migrations_current == true'
check jobs.heartbeat "readyz jobs age below threshold" body_jq \
  '.checks[] | select(.name == "jobs") | .ok == true and .detail.age_seconds < .detail.threshold_seconds'
req GET /healthz/backup
check backup.freshness "GET /healthz/backup 200 backup_ok" eval 'status_is 200 && body_jq ".backup_ok == true"'

# --- Migrations
if [ "$RAW_ALEMBIC" = cli ]; then
  heads=$(alembic ${ALEMBIC_CONFIG:+-c "$ALEMBIC_CONFIG"} heads 2>/dev/null | awk '{print $1}')
  current=$(alembic ${ALEMBIC_CONFIG:+-c "$ALEMBIC_CONFIG"} current 2>/dev/null | awk '{print $1}')
  check migrations.single_head "alembic heads: one revision" eval '[ "$(printf "%s\n" "$heads" | grep -c .)" = 1 ]'
  check migrations.at_head "alembic current matches the head" eval '[ -n "$current" ] && [ "$current" = "$heads" ]'
else
  current=$(psql "$PSQL_URL" -XAtq -c "SELECT version_num FROM alembic_version" 2>/dev/null)
  check migrations.at_head "version table holds EXPECTED_HEAD" eval '[ -n "$current" ] && [ "$current" = "${EXPECTED_HEAD:-}" ]'
fi

# --- RLS (as the application role)
policies=$(psql "$PSQL_URL" -XAtq -c "SELECT count(*) FROM pg_policies WHERE policyname LIKE '%org_isolation%'" 2>/dev/null)
check rls.policies "org_isolation policies present" eval '[ "${policies:-0}" -gt 1 ]'
own=$(psql "$PSQL_URL" -XAtq -c "BEGIN" -c "SET LOCAL app.current_org_id = '$ORG_ID'" -c "SELECT count(*) FROM leads" -c "COMMIT" 2>/dev/null | tail -n 1)
none=$(psql "$PSQL_URL" -XAtq -c "SELECT count(*) FROM leads" 2>/dev/null)
check rls.isolation "leads visible with the org set" eval '[ "${own:-0}" -gt 0 ]'
check rls.isolation "no leads visible without SET LOCAL" eval '[ "$none" = 0 ]'

# --- Jobs / scheduler endpoints (Basic Auth behind the proxy's MFA header)
admin POST /v1/admin/cleanup
check admin.cleanup "POST cleanup 202 {deleted:int}" eval 'status_is 202 && body_jq ".deleted | type == \"number\""'
admin POST /v1/admin/email-scan
check admin.email_scan "POST email-scan 202 {sent, skipped}" eval 'status_is 202 && body_jq "(.sent | type == \"number\") and (.skipped | type == \"number\")"'
admin POST /v1/admin/retention/cleanup
check admin.retention "POST retention/cleanup 200 with its counters" eval 'status_is 200 && body_jq "(.leads_deleted | type == \"number\") and (.processed | type == \"number\")"'
admin GET "/v1/admin/export-dead-letter?limit=1"
check admin.export_dlq "GET export-dead-letter 200 {items, total}" eval 'status_is 200 && body_jq "(.items | type == \"array\") and (.total | type == \"number\")"'
admin GET "/v1/admin/outbox/dead-letter?limit=1"
check admin.outbox_dlq "GET outbox/dead-letter 200 array" eval 'status_is 200 && body_jq "type == \"array\""'
admin GET /v1/admin/jobs/status
check jobs.status "jobs/status: consecutive_failures below 2" eval 'status_is 200 && body_jq "all(.[]; (.consecutive_failures // 0) < 2)"'

# --- Smoke
req POST /v1/estimate -H "Content-Type: application/json" -d '{"beds":2,"baths":1.5,"cleaning_type":"deep"}'
check smoke.estimate "POST /v1/estimate 200 pricing_config_id, total_before_tax" eval \
  'status_is 200 && body_jq "(.pricing_config_id | type == \"string\") and (.total_before_tax | type == \"number\")"'
# The snapshot is the whole estimate answer (the real service wants every field of it).
lead=$(jq -c '{name: "Smoke Lead", phone: "780-555-0000", email: "lead@example.com", postal_code: "T5J0N3",
               address: "1 Smoke St", preferred_dates: ["any"],
               structured_inputs: {beds: 2, baths: 1.5, cleaning_type: "deep"}, estimate_snapshot: .}' "$tmp/body")
req POST /v1/leads -H "Content-Type: application/json" -d "$lead"
check smoke.lead "POST /v1/leads 201 lead_id" eval 'status_is 201 && body_jq ".lead_id != null"'
admin GET "/v1/admin/metrics?format=csv"
check smoke.metrics_csv "GET metrics?format=csv 200, first row range_start" eval 'status_is 200 && head -n 1 "$tmp/body" | grep -q "^range_start,"'
req GET "/v1/admin/queue/photos?status=pending&limit=1" -u "$DISPATCHER_BASIC_USERNAME:$DISPATCHER_BASIC_PASSWORD" "${MFA[@]}"
check smoke.queue "GET queue/photos (dispatcher) 200 object" eval 'status_is 200 && body_jq "type == \"object\""'

# --- Admin authentication (checklist 5.1)
req GET /v1/admin/profile
check auth.anonymous "admin without credentials 401" status_is 401
req GET /v1/admin/profile -u "$ADMIN_BASIC_USERNAME:wrong-password-on-purpose" "${MFA[@]}"
check auth.wrong_password "admin with a wrong password 401" status_is 401

elapsed=$(echo "$EPOCHREALTIME - $started" | bc)
echo "RAW RUNBOOK: $((passed + failed)) checks, $failed failed, ${elapsed} s"
[ "$failed" -lt 100 ] && exit "$failed"
exit 100
