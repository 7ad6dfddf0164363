# os.fork() warns about threads (CPython 3.12+) exactly as bare: not in a
# single-threaded program, once with a second thread alive.
import os
import sys
import threading
import time
import warnings


def fork_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 7
    return sum(issubclass(w.category, DeprecationWarning) for w in caught)


print("single-threaded", fork_warnings())
release = threading.Event()
t = threading.Thread(target=release.wait)
t.start()
print("two threads", fork_warnings())
release.set()
t.join()
# The thread has left Python; let it leave the kernel too (memtrail's writer,
# which may have started meanwhile, is not waited for).
while os.path.exists("/proc/self/task/%d" % t.native_id):
    time.sleep(0.001)
print("single-threaded again", fork_warnings())
# The program's own fopen of the file, through ctypes: the count leaves
# memtrail's thread out.
import ctypes
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.fread.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
f = libc.fopen(b"/proc/self/stat", b"r")
buf = ctypes.create_string_buffer(1024)
n = libc.fread(buf, 1, 1023, f)
libc.fclose(f)
print("threads", buf.raw[:n].decode().rsplit(")", 1)[1].split()[17])
