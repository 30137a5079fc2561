#!/bin/sh
# A stand-in build for orchestration tests, steered by files in CONTROL:
#   sleep        seconds to sleep first
#   fail-<arch>  fail like a compiler error on that arch
control=$1 arch=$2
if [ -e "$control/sleep" ]; then sleep "$(cat "$control/sleep")"; fi
if [ -e "$control/fail-$arch" ]; then
    echo "  CC      arch/$arch/kernel/setup.o"
    echo "arch/$arch/kernel/setup.c:42:7: error: 'boot_cpu_data' undeclared (first use in this function)"
    echo "make[3]: *** [scripts/Makefile.build:250: arch/$arch/kernel/setup.o] Error 1"
    exit 2
fi
echo "built $arch"
