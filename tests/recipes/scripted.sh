#!/bin/sh
# A stand-in build for orchestration tests, steered by files in CONTROL:
#   sleep                 seconds to sleep first
#   fail-<arch>           fail like a compiler error on that arch
# and, when the recipe passes the job's COMMIT too, per commit:
#   sleep-<commit>        seconds to sleep first at that commit
#   fail-<arch>-<commit>  fail like that compiler error on that arch at that commit
#   other-<arch>-<commit> fail with another first error (a Kconfig one) there
control=$1 arch=$2 commit=${3:-none}
if [ -e "$control/sleep" ]; then sleep "$(cat "$control/sleep")"; fi
if [ -e "$control/sleep-$commit" ]; then sleep "$(cat "$control/sleep-$commit")"; fi
if [ -e "$control/other-$arch-$commit" ]; then
    echo "arch/$arch/Kconfig:7: syntax error"
    exit 1
fi
if [ -e "$control/fail-$arch" ] || [ -e "$control/fail-$arch-$commit" ]; then
    echo "  CC      arch/$arch/kernel/setup.o"
    echo "arch/$arch/kernel/setup.c:42:7: error: 'boot_cpu_data' undeclared (first use in this function)"
    echo "make[3]: *** [scripts/Makefile.build:250: arch/$arch/kernel/setup.o] Error 1"
    exit 2
fi
echo "built $arch"
