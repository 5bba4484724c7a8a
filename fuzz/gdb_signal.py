# gdb script for scripts/fuzz.sh FUZZ_GDB=1: run the fuzzer; if it stops on
# a signal, print the backtrace and exit 128+signal (as the shell would
# report a process killed by it), else exit with its own status.
import gdb

gdb.execute("handle SIGPIPE stop print")
gdb.execute("run")
inf = gdb.selected_inferior()
if inf.pid:
    sig = 0
    try:
        sig = int(gdb.parse_and_eval("$_siginfo.si_signo"))
    except gdb.error:
        pass
    gdb.execute("bt 40")
    gdb.execute("info sharedlibrary")
    gdb.execute("kill")
    gdb.execute("quit %d" % (128 + (sig or 6)))
else:
    code = gdb.parse_and_eval("$_exitcode")
    gdb.execute("quit %d" % (0 if code.type.code == gdb.TYPE_CODE_VOID else int(code)))
