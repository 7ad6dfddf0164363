# multiprocessing.Pool.terminate() stops its workers with SIGTERM: each
# worker leaves an exit snapshot (label SIGTERM) holding what its tasks kept.
import multiprocessing
import os
import signal
import time

kept = []


def init(sem):
    global started
    started = sem


def work(i):
    kept.append(bytearray(123456))  # SITE:kept
    return os.getpid()


def block(i):
    started.release()
    time.sleep(60)


if __name__ == "__main__":
    print("SIGTERM is SIG_DFL", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
    ctx = multiprocessing.get_context("fork")
    started = ctx.Semaphore(0)
    pool = ctx.Pool(2, initializer=init, initargs=(started,))
    pids = pool.map(work, range(4), chunksize=1)
    # Both workers busy, so that terminate() has to stop them.
    pool.map_async(block, range(2), chunksize=1)
    started.acquire()
    started.acquire()
    pool.terminate()
    pool.join()
    print("TASKS", len(pids))
