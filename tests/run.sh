#!/bin/sh
# Runs every test program given as an argument and adds up their summaries.
# Each program's lines are shown as they come (a test can train for minutes);
# a copy goes to a temporary file, whose last line is the program's summary
# "N passed, N failed". A program that crashes or prints no summary counts
# as one failure. The last line is the total.
log="${TMPDIR:-/tmp}/dl_run.$$.log"
status="${TMPDIR:-/tmp}/dl_run.$$.rc"
trap 'rm -f "$log" "$status"' EXIT
trap 'exit 130' INT TERM
passed=0; failed=0
for t in "$@"; do
    echo "== $t"
    { "$t" 2>&1; echo $? > "$status"; } | tee "$log"
    rc=$(cat "$status")
    last=$(tail -n 1 "$log")
    p=$(printf '%s\n' "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
    f=$(printf '%s\n' "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
    if [ -z "$p" ]; then echo "FAIL $t: no summary (exit $rc)"; failed=$((failed + 1)); continue; fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then echo "FAIL $t: exit $rc"; f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
