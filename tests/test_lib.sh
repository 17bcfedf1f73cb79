#!/bin/sh
# The library as a packager ships it: `make install` into build/prefix (and a
# DESTDIR staging tree), only dl_ symbols exported, file names and soname from
# the header's version, and tests/lib_check.c built with
# `pkg-config --cflags --libs dlh` against the installed copy, shared and
# static, and run. Last line: "N passed, N failed" (tests/run.sh adds it up).
cd "$(dirname "$0")/.." || exit 1
if ! command -v pkg-config >/dev/null 2>&1; then
    echo "library tests: not run (no pkg-config)"
    [ -n "$DL_TEST_REQUIRE_ALL" ] && { echo "0 passed, 1 failed"; exit 1; }   # CI: missing is a failure
    echo "0 passed, 0 failed"
    exit 0
fi
root=$(pwd); B=$root/build; P=$B/prefix; D=$B/destdir
passed=0; failed=0
check() {   # check NAME COMMAND...: one test, passed when the command succeeds
    name=$1; shift
    if "$@"; then echo "ok   $name"; passed=$((passed + 1)); else echo "FAIL $name"; failed=$((failed + 1)); fi
}
run_prog() {    # runs a lib_check build and adds its own summary
    out=$("$@" 2>&1); rc=$?
    printf '%s\n' "$out"
    last=$(printf '%s\n' "$out" | tail -n 1)
    p=${last%% passed*}; f=${last#*passed, }; f=${f%% failed}
    case "$p$f" in *[!0-9]*|'') echo "FAIL $*: no summary (exit $rc)"; failed=$((failed + 1)); return;; esac
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    passed=$((passed + p)); failed=$((failed + f))
}
ver() { sed -n "s/^#define DL_VERSION_$1 //p" dl.h; }
major=$(ver MAJOR); minor=$(ver MINOR); patch=$(ver PATCH)
version=$major.$minor.$patch
if [ "$major" = 0 ]; then sover=0.$minor; else sover=$major; fi

rm -rf "$P" "$D"
check "make install PREFIX=build/prefix" sh -c "${MAKE:-make} -s install PREFIX='$P' >/dev/null"
check "make install DESTDIR=build/destdir PREFIX=/usr" \
    sh -c "${MAKE:-make} -s install DESTDIR='$D' PREFIX=/usr >/dev/null"
installed() {   # every file in place, and the .pc names the final prefix, not the staging one
    for f in include/dl.h lib/libdlh.so.$version lib/libdlh.so.$sover lib/libdlh.so lib/libdlh.a \
             lib/pkgconfig/dlh.pc; do
        [ -e "$1/$f" ] || { echo "    missing $1/$f"; return 1; }
    done
    grep -qx "prefix=$2" "$1/lib/pkgconfig/dlh.pc" || { echo "    $1/lib/pkgconfig/dlh.pc: prefix is not $2"; return 1; }
}
check "installed files (prefix)" installed "$P" "$P"
check "installed files (DESTDIR)" installed "$D/usr" /usr
soname() { readelf -d "$P/lib/libdlh.so.$version" | grep -q "SONAME.*\[libdlh.so.$sover\]"; }
check "soname libdlh.so.$sover from dl.h's version $version" soname

# -fvisibility=hidden plus DLDEF's default visibility: the public API only.
only_dl() {     # only_dl NM-ARGS...: at least 50 defined global symbols, all dl_
    syms=$(nm "$@" | awk 'NF >= 3 && $2 ~ /^[A-TV-Z]$/ {print $3}')
    bad=$(printf '%s\n' "$syms" | grep -v '^dl_')
    n=$(printf '%s\n' "$syms" | grep -c '^dl_')
    [ -n "$bad" ] && echo "    exported, not dl_: $bad"
    [ -z "$bad" ] && [ "$n" -ge 50 ] && echo "    $n symbols, all dl_"
}
check "libdlh.so exports only dl_ symbols" only_dl -D --defined-only "$P/lib/libdlh.so"
check "libdlh.a defines only dl_ globals" only_dl -g --defined-only "$P/lib/libdlh.a"

export PKG_CONFIG_PATH="$P/lib/pkgconfig"
check "pkg-config --modversion dlh is $version" test "$(pkg-config --modversion dlh)" = "$version"
CC=${CC:-cc}
# shellcheck disable=SC2046,SC2086  # $CC and pkg-config's output are meant to be split
check "build against the installed library (shared)" \
    $CC -std=c99 -Wall -Wextra -pedantic -Werror tests/lib_check.c -o "$B/lib_check" $(pkg-config --cflags --libs dlh)
needs() { readelf -d "$B/lib_check" | grep -q "NEEDED.*\[libdlh.so.$sover\]"; }
check "the program needs libdlh.so.$sover" needs
[ -x "$B/lib_check" ] && LD_LIBRARY_PATH="$P/lib" run_prog "$B/lib_check"
# shellcheck disable=SC2046,SC2086
check "build against the installed library (static)" \
    $CC -static -std=c99 -Wall -Wextra -pedantic -Werror tests/lib_check.c -o "$B/lib_check_static" \
    $(pkg-config --static --cflags --libs dlh)
no_dynamic() { ! readelf -d "$B/lib_check_static" 2>/dev/null | grep -q NEEDED; }
check "the static program has no shared dependency" no_dynamic
[ -x "$B/lib_check_static" ] && run_prog "$B/lib_check_static"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
