#!/bin/sh
# Renders the training report that build/test_fit writes (build/report.html)
# in headless Chromium (Debian's chromium; .ci/run installs it; without it:
# "not run", a failure under DL_TEST_REQUIRE_ALL) and checks
# that the page loads with no console message (a Content-Security-Policy in
# the page blocks, and logs, any request it would make), that its DOM holds
# the charts and images, and that the screenshot is not blank: much larger
# than an empty page's, rendered the same way. The PNG stays in build/.
B=${B:-build}
passed=0; failed=0
check() {   # name, then a condition as a shell command
    name=$1; shift
    if "$@"; then echo "ok   $name"; passed=$((passed + 1)); else echo "FAIL $name"; failed=$((failed + 1)); fi
}
chrome=$(command -v "${CHROMIUM:-/usr/bin/chromium}" || command -v chromium || command -v chromium-browser)
if [ -z "$chrome" ]; then
    echo "report test: not run (missing: chromium)"
    [ -n "$DL_TEST_REQUIRE_ALL" ] && { echo "0 passed, 1 failed"; exit 1; }   # CI: missing is a failure
    echo "0 passed, 0 failed"; exit 0
fi
if [ ! -s "$B/report.html" ]; then echo "FAIL report: $B/report.html missing (build/test_fit writes it)"; echo "0 passed, 1 failed"; exit 1; fi
render() {  # page, screenshot, log; --dump-dom's output goes to the log's .dom
    profile=$(mktemp -d)
    timeout 120 "$chrome" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync --user-data-dir="$profile" \
        --enable-logging=stderr --v=0 --window-size=1200,2400 --screenshot="$2" "file://$1" >"$3" 2>&1
    rc=$?
    timeout 120 "$chrome" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync --user-data-dir="$profile" \
        --dump-dom "file://$1" >"$3.dom" 2>/dev/null
    rm -rf "$profile"
    return $rc
}
page=$(cd "$B" && pwd)/report.html
printf '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body></body></html>\n' >"$B/blank.html"
check "chromium renders the report" render "$page" "$B/report.png" "$B/report.log"
render "$(cd "$B" && pwd)/blank.html" "$B/blank.png" "$B/blank.log"
check "no console message (errors, blocked requests)" sh -c "! grep -q 'CONSOLE' '$B/report.log'"
check "the DOM has the curves, the heat map and images" sh -c \
    "[ \$(grep -o '<polyline' '$B/report.log.dom' | wc -l) -ge 5 ] && grep -q 'Confusion matrix' '$B/report.log.dom' && [ \$(grep -o 'data:image/png' '$B/report.log.dom' | wc -l) -ge 20 ]"
size=$(wc -c <"$B/report.png" 2>/dev/null || echo 0); blank=$(wc -c <"$B/blank.png" 2>/dev/null || echo 0)
echo "    report.png $size bytes, an empty page $blank bytes"
check "the screenshot is not blank" [ "$blank" -gt 0 -a "$size" -gt $((blank * 10)) ]
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
