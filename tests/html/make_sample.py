#!/usr/bin/env python3
"""Write a data file for the memtrail html page (dev helper, see HTML_DATA.md).

    make_sample.py [OUT.json]              the small hand-made sample
    make_sample.py --big N OUT.json        a large random one (N tree nodes)

The small sample models a Python web service run with `memtrail run
--native -i 10`: three snapshots (two interval ones and the exit one, which
has leak data and a Python object graph), a cache that keeps growing, a
request buffer that shrinks, a short zlib spike that makes the process-wide
peak, a few tiny sites merged into an "other" node, and a memory timeline.
Every figure is derived from the same per-stack values, so the tree, the
report entries and the totals agree exactly, as they do in `memtrail html`.
The --big file (about 10 MB for N=50000) checks that the page stays fast.
"""
import json
import math
import random
import sys

LIBPY = '/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0'
LIBC = '/usr/lib/x86_64-linux-gnu/libc.so.6'
CPY = '/build/python3.11/'
# name: (function, file, line, module path ('' for Python frames), kind)
F = {
    'start': ('_start', '', 0, '/usr/bin/python3.11', 'native'),
    'libc_main': ('__libc_start_main', '../csu/libc-start.c', 360, LIBC, 'native'),
    'bytes_main': ('Py_BytesMain', CPY + 'Modules/main.c', 701, LIBPY, 'native'),
    'run_module': ('pymain_run_module', CPY + 'Modules/main.c', 300, LIBPY, 'native'),
    'run_as_main': ('_run_module_as_main', '<frozen runpy>', 198, '', 'python'),
    'run_code': ('_run_code', '<frozen runpy>', 88, '', 'python'),
    'mod': ('<module>', '/srv/app/server.py', 88, '', 'python'),
    'main': ('main', '/srv/app/server.py', 71, '', 'python'),
    'serve': ('Server.serve_forever', '/srv/app/server.py', 52, '', 'python'),
    'handle': ('Server.handle_request', '/srv/app/server.py', 40, '', 'python'),
    'eval': ('_PyEval_Vector', CPY + 'Include/internal/pycore_ceval.h', 73, LIBPY, 'native'),
    'parse': ('parse_body', '/srv/app/codec.py', 22, '', 'python'),
    'loads': ('loads', '/usr/lib/python3.11/json/__init__.py', 346, '', 'python'),
    'decode': ('JSONDecoder.decode', '/usr/lib/python3.11/json/decoder.py', 337, '', 'python'),
    'raw': ('JSONDecoder.raw_decode', '/usr/lib/python3.11/json/decoder.py', 353, '', 'python'),
    'scanstr': ('scanstring_unicode', CPY + 'Modules/_json.c', 473,
                '/usr/lib/python3.11/lib-dynload/_json.cpython-311-x86_64-linux-gnu.so', 'native'),
    'unew': ('PyUnicode_New', CPY + 'Objects/unicodeobject.c', 1403, LIBPY, 'native'),
    'dictres': ('dictresize', CPY + 'Objects/dictobject.c', 1429, LIBPY, 'native'),
    'newkeys': ('new_keys_object', CPY + 'Objects/dictobject.c', 632, LIBPY, 'native'),
    'listres': ('list_resize', CPY + 'Objects/listobject.c', 67, LIBPY, 'native'),
    'render': ('render_page', '/srv/app/views.py', 17, '', 'python'),
    'rows': ('build_rows', '/srv/app/views.py', 31, '', 'python'),
    'fmt': ('format_row', '/srv/app/views.py', 45, '', 'python'),
    'join': ('_PyUnicode_JoinArray', CPY + 'Objects/unicodeobject.c', 9874, LIBPY, 'native'),
    'put': ('LRUCache.put', '/srv/app/cache.py', 28, '', 'python'),
    'getitem': ('LRUCache.__setitem__', '/srv/app/cache.py', 41, '', 'python'),
    'bfrom': ('PyBytes_FromStringAndSize', CPY + 'Objects/bytesobject.c', 141, LIBPY, 'native'),
    'recv': ('socket.recv_into', '/srv/app/server.py', 61, '', 'python'),
    'bytearr': ('PyByteArray_Resize', CPY + 'Objects/bytearrayobject.c', 243, LIBPY, 'native'),
    'model': ('load_model', '/srv/app/model.py', 12, '', 'python'),
    'npzeros': ('PyArray_Zeros', 'numpy/core/src/multiarray/ctors.c', 3001,
                '/srv/venv/lib/python3.11/site-packages/numpy/core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so', 'native'),
    'datamem': ('PyDataMem_UserNEW', 'numpy/core/src/multiarray/alloc.c', 386,
                '/srv/venv/lib/python3.11/site-packages/numpy/core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so', 'native'),
    'compress': ('archive_logs', '/srv/app/codec.py', 60, '', 'python'),
    'zcomp': ('zlib_Compress_compress', CPY + 'Modules/zlibmodule.c', 692,
              '/usr/lib/python3.11/lib-dynload/zlib.cpython-311-x86_64-linux-gnu.so', 'native'),
    'deflate': ('deflateInit2_', '', 0, '/usr/lib/x86_64-linux-gnu/libz.so.1.2.13', 'native'),
    'csv': ('import_csv', '/srv/app/ingest.py', 19, '', 'python'),
    'readchunk': ('fastcsv::Reader::read_chunk(unsigned long)', 'src/reader.cpp', 144,
                  '/srv/venv/lib/python3.11/site-packages/fastcsv/_fastcsv.so', 'native'),
    'opnew': ('operator new(unsigned long)', '', 0, '/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30', 'native'),
    'graph': ('build_graph', '/srv/app/graph.py', 14, '', 'python'),
    'gcnew': ('_PyObject_GC_New', CPY + 'Modules/gcmodule.c', 2292, LIBPY, 'native'),
    'clone': ('clone3', '../sysdeps/unix/sysv/linux/x86_64/clone3.S', 81, LIBC, 'native'),
    'startthr': ('start_thread', './nptl/pthread_create.c', 444, LIBC, 'native'),
    'pythread': ('thread_run', CPY + 'Modules/_threadmodule.c', 1092, LIBPY, 'native'),
    'boot': ('Thread._bootstrap', '/usr/lib/python3.11/threading.py', 995, '', 'python'),
    'bootin': ('Thread._bootstrap_inner', '/usr/lib/python3.11/threading.py', 1038, '', 'python'),
    'trun': ('Thread.run', '/usr/lib/python3.11/threading.py', 975, '', 'python'),
    'flush': ('flush_loop', '/srv/app/metrics.py', 30, '', 'python'),
    'badd': ('Batch.add', '/srv/app/metrics.py', 12, '', 'python'),
    'tls': ('_dl_allocate_tls', './elf/dl-tls.c', 486, '/usr/lib64/ld-linux-x86-64.so.2', 'native'),
    'pthc': ('pthread_create', './nptl/pthread_create.c', 634, LIBC, 'native'),
    'spawn': ('Server.spawn_workers', '/srv/app/server.py', 33, '', 'python'),
}
MAIN = ['start', 'libc_main', 'bytes_main', 'run_module', 'run_as_main', 'run_code', 'mod', 'main']
REQ = MAIN + ['serve', 'handle', 'eval']
WORKER = ['clone', 'startthr', 'pythread', 'boot', 'bootin', 'trun', 'flush']
END = 27.5
SNAP_T = [10.0, 20.0, END]


def ramp(a, b):        # linear from a at 0 to b at END
    return lambda t: a + (b - a) * min(t, END) / END


def grow(rate, t0=0.0):
    return lambda t: max(0.0, t - t0) * rate


def const(b, t0=0.0):
    return lambda t: b if t >= t0 else 0.0


def spike(b, t1, t2):
    return lambda t: b if t1 <= t < t2 else 0.0


def wave(b, period):
    return lambda t: b * (0.55 + 0.45 * math.sin(t * 2 * math.pi / period))


# (outermost-first frames, live(t), average block size, allocation churn B/s)
STACKS = [
    (REQ + ['put', 'getitem', 'bfrom'], grow(2.1e6), 4096, 3e5),
    (REQ + ['put', 'getitem', 'dictres', 'newkeys'], grow(3.1e5), 9000, 1e5),
    (REQ + ['parse', 'loads', 'decode', 'raw', 'scanstr', 'unew'], wave(3.5e6, 4.3), 120, 4e6),
    (REQ + ['parse', 'loads', 'decode', 'raw', 'dictres', 'newkeys'], wave(1.2e6, 4.3), 640, 1.5e6),
    (REQ + ['render', 'rows', 'fmt', 'join'], wave(2.4e6, 3.1), 2048, 5e6),
    (REQ + ['render', 'rows', 'listres'], wave(6.0e5, 3.1), 8192, 8e5),
    (REQ + ['recv', 'bytearr'], ramp(9.0e6, 1.5e6), 65536, 2e6),
    (MAIN + ['model', 'npzeros', 'datamem'], const(33554432, 0.4), 8388608, 0),
    (MAIN + ['model', 'dictres', 'newkeys'], const(180224, 0.4), 4096, 0),
    (REQ + ['compress', 'zcomp', 'deflate'], spike(67108864, 23.9, 24.6), 262144, 2e4),
    (MAIN + ['csv', 'readchunk', 'opnew'], const(6291456, 1.0), 65536, 1e5),
    (MAIN + ['graph', 'gcnew'], grow(1.4e4, 2.0), 56, 3e4),
    (WORKER + ['badd', 'listres'], wave(4.0e5, 7.0), 4096, 2e5),
    (WORKER + ['badd', 'unew'], wave(2.0e5, 7.0), 96, 3e5),
    (MAIN + ['spawn', 'pthc', 'tls'], const(4 * 2304, 0.2), 2304, 0),
]
# stacks too small to keep: merged into "other" nodes under these prefixes
TINY = [(REQ + ['render', 'rows'], 7), (MAIN, 9)]
# exit snapshot's leak kinds as (stack, kind, share of its live bytes)
LEAKS = [(10, 'definite', 0.0625), (10, 'indirect', 0.03125), (11, 'possible', 0.02),
         (0, 'possible', 0.001)]


def frame_json(name, addr):
    fn, file, line, module, kind = F[name]
    return {'function': fn, 'symbol': fn, 'file': file, 'line': line, 'module': module,
            'address': '0x%x' % addr, 'module_offset': '0x%x' % (addr & 0xfffff if module else 0),
            'kind': kind}


def key_frame(frames):          # innermost user frame (docs/report-json.md)
    for n in reversed(frames):
        if not F[n][0].startswith('operator new'):
            return n
    return frames[-1]


def group_key(name, by):
    fn, file, line, module, kind = F[name]
    base = module.rsplit('/', 1)[-1]
    if by == 'function':
        return fn
    if by == 'line':
        return ('%s:%d' % (file, line) if line else file) if file else fn
    if by == 'file':
        return file or '[%s]' % base
    return module or '[unknown]'


def snapshot_header(seq, trig, t):
    start = 1796425100000000000
    return {'path': '/tmp/out/memtrail.4242.%04d.%s.mtsnap' % (seq, trig), 'pid': 4242,
            'ppid': 4100, 'seq': seq, 'trigger': trig, 'label': '',
            'time': '2026-12-04T22:58:%06.3fZ' % (20 + t), 'time_ns': start + int(t * 1e9),
            'start_ns': start, 'counter': int(t * 181234),
            'cmdline': ['/usr/bin/python3.11', '-m', 'app.server', '--port', '8080'],
            'exe': '/usr/bin/python3.11', 'hostname': 'web-3', 'unwind': 'libunwind', 'depth': 64}


def small_sample():
    rnd = random.Random(14)
    stacks = [(fr, live, blk, churn) for fr, live, blk, churn in STACKS]
    tiny = []
    for prefix, n in TINY:
        for i in range(n):
            nm = 'tiny%d_%d' % (len(prefix), i)
            F[nm] = ('helper_%d' % i, '/srv/app/util.py', 100 + i, '', 'python')
            tiny.append((prefix + [nm], const(rnd.randint(40, 900), rnd.random() * 5), 48, 10))
    every = stacks + tiny
    step = 0.1
    ts = [round(step * (i + 1), 2) for i in range(int(END / step))]
    total = lambda t: sum(int(s[1](t)) for s in every)
    heap = [int(total(t)) for t in ts]
    pk = max(range(len(ts)), key=lambda i: heap[i])
    # tree: stacks outermost first; tiny stacks end in an "other" node
    names, frames, parent, frame_of, child = {}, [], [-1], [-1], {}
    def fidx(n):
        if n not in names:
            names[n] = len(frames)
            fn, file, line, module, kind = F[n]
            frames.append({'function': fn, 'file': file, 'line': line,
                           'module': module.rsplit('/', 1)[-1], 'kind': kind})
        return names[n]
    def node(p, f):
        if (p, f) not in child:
            child[(p, f)] = len(parent)
            parent.append(p)
            frame_of.append(f)
        return child[(p, f)]
    leaf, merged = [], {}
    for fr, *_ in every:
        tiny_stack = fr[-1].startswith('tiny')
        n = 0
        for name in (fr[:-1] if tiny_stack else fr):
            n = node(n, fidx(name))
        if tiny_stack:
            n = node(n, -2)
            merged[n] = merged.get(n, 0) + 1
        leaf.append(n)
    snaps = []
    for si, t in enumerate(SNAP_T):
        trig = 'exit' if t == END else 'interval'
        pt = max((i for i in range(len(ts)) if ts[i] <= t), key=lambda i: heap[i])
        per = []
        for fr, live, blk, churn in every:
            lb = int(live(t))
            pb = int(live(ts[pt]))
            ab = lb + int(churn * t) + int(max(live(x) for x in ts if x <= t))
            per.append({'bytes': lb, 'blocks': -(-lb // blk), 'peak_bytes': pb,
                        'peak_blocks': -(-pb // blk), 'alloc_bytes': ab,
                        'alloc_blocks': -(-ab // blk), 'stacks': 1})
        metrics = {'live': ('bytes', 'blocks'), 'peak': ('peak_bytes', 'peak_blocks'),
                   'allocated': ('alloc_bytes', 'alloc_blocks')}
        leak_vals = None
        if trig == 'exit':
            leak_vals = {k: [0] * len(every) for k in ('definite', 'indirect', 'possible')}
            for s, kind, share in LEAKS:
                leak_vals[kind][s] = int(per[s]['bytes'] * share) // 64 * 64
        values = {}
        for m, (bk, ck) in metrics.items():
            b, c = [0] * len(parent), [0] * len(parent)
            for s, n in enumerate(leaf):
                while n >= 0:
                    b[n] += per[s][bk]
                    c[n] += per[s][ck]
                    n = parent[n]
            values[m] = {'bytes': b, 'blocks': c}
        if leak_vals:
            for m in ('definite', 'possible'):
                b, c = [0] * len(parent), [0] * len(parent)
                for s, n in enumerate(leaf):
                    v = leak_vals[m][s]
                    while n >= 0 and v:
                        b[n] += v
                        c[n] += -(-v // 4096)
                        n = parent[n]
                values[m] = {'bytes': b, 'blocks': c}
        hdr = snapshot_header(si + 1, trig, t)
        rep = {}
        for by in ('line', 'function', 'file', 'module'):
            groups = {}
            for s, (fr, *_x) in enumerate(every):
                kf = key_frame(fr)
                k = group_key(kf, by)
                g = groups.setdefault(k, {'key': k, 'bytes': 0, 'blocks': 0, 'peak_bytes': 0,
                                          'peak_blocks': 0, 'alloc_bytes': 0, 'alloc_blocks': 0,
                                          'stacks': 0, 'frames': [frame_json(kf, 0x7f3a10000000 + 16 * len(kf))]})
                for m in ('bytes', 'blocks', 'peak_bytes', 'peak_blocks', 'alloc_bytes',
                          'alloc_blocks', 'stacks'):
                    g[m] += per[s][m]
            ent = [g for g in groups.values() if g['bytes'] or g['peak_bytes'] or g['alloc_bytes']]
            ent.sort(key=lambda g: (-g['bytes'], -g['blocks'], g['key']))
            tb = sum(p['bytes'] for p in per)
            tk = sum(p['blocks'] for p in per)
            rep[by] = {'snapshot': hdr, 'total_bytes': tb, 'total_blocks': tk,
                       'peak_bytes': heap[pt], 'peak_blocks': sum(p['peak_blocks'] for p in per),
                       'peak_time_ns': hdr['start_ns'] + int(ts[pt] * 1e9),
                       'alloc_bytes': sum(p['alloc_bytes'] for p in per),
                       'alloc_blocks': sum(p['alloc_blocks'] for p in per),
                       'free_blocks': sum(p['alloc_blocks'] - p['blocks'] for p in per),
                       'peak_time': '2026-12-04T22:58:%06.3fZ' % (20 + ts[pt]),
                       'filtered': False, 'selected_bytes': tb, 'selected_blocks': tk,
                       'live_only': False, 'group_by': by, 'top': 500,
                       'total_entries': len(ent), 'entries': ent[:500]}
        snaps.append({'path': hdr['path'], 'pid': 4242, 'seq': si + 1, 'trigger': trig,
                      'label': '', 'time_s': t, 'values': values, 'report': rep,
                      'leaks': leaks_json(hdr, per, leak_vals, every) if leak_vals else None,
                      'cycles': cycles_json(hdr) if leak_vals else None})
    rss = []
    r = 0
    for h in heap:
        r = max(int(h * 1.12) + 41943040, int(r * 0.995))
        rss.append(r // 4096 * 4096)
    blocks = [int(h / 700) for h in heap]
    return {'schema': 1, 'title': 'memtrail: /usr/bin/python3.11 -m app.server --port 8080',
            'generator': 'memtrail html (tests/html/make_sample.py)', 'frames': frames,
            'tree': {'parent': parent, 'frame': frame_of,
                     'merged': sorted([n, c] for n, c in merged.items())},
            'pruned': {'threshold_share': 0.0001, 'nodes_merged': sum(merged.values()),
                       'nodes_kept': len(parent) - len(merged)},
            'snapshots': snaps,
            'timeline': {'step_s': step, 't': ts, 'heap': heap, 'blocks': blocks, 'rss': rss,
                         'peak': {'t': ts[pk], 'bytes': heap[pk]}}}


def leaks_json(hdr, per, leak_vals, every):
    summ = {k: {'bytes': sum(leak_vals.get(k, [0])), 'blocks': 0} for k in
            ('definite', 'indirect', 'possible', 'reachable', 'libc', 'unscanned')}
    for k in ('definite', 'indirect', 'possible'):
        summ[k]['blocks'] = sum(-(-v // 4096) for v in leak_vals[k])
    live = sum(p['bytes'] for p in per)
    lost = sum(summ[k]['bytes'] for k in ('definite', 'indirect', 'possible'))
    summ['libc']['bytes'], summ['libc']['blocks'] = 1024, 1
    summ['reachable']['bytes'] = live - lost - 1024
    summ['reachable']['blocks'] = sum(p['blocks'] for p in per) - sum(
        summ[k]['blocks'] for k in ('definite', 'indirect', 'possible')) - 1
    recs = []
    for kind in ('definite', 'possible'):
        for s, v in enumerate(leak_vals[kind]):
            if v:
                fr = every[s][0]
                recs.append({'kind': kind, 'bytes': v, 'blocks': -(-v // 4096), 'stack': s,
                             'frames': [frame_json(n, 0x7f3a20000000 + 64 * i)
                                        for i, n in enumerate(reversed(fr))]})
    return {'snapshot': hdr, 'scan': {'threads': 3, 'threads_missed': 0, 'partial': False,
                                      'root_bytes': 1204224, 'heap_bytes': live,
                                      'stop_ns': 48213377},
            'summary': summ, 'filtered': False, 'kinds': ['definite', 'possible'],
            'total_records': len(recs), 'leaks': recs}


def cycles_json(hdr):
    g = [frame_json(n, 0x7f3a30000000 + 64 * i) for i, n in enumerate(['gcnew', 'graph', 'main'])]
    def obj(tp, a, size, rc, fin=False):
        return {'type': tp, 'address': '0x7f3a4%07x' % a, 'size': size, 'refcount': rc,
                'finalizer': fin, 'frames': g}
    return {'snapshot': hdr,
            'graph': {'objects': 48211, 'edges': 203377, 'python': '3.11', 'gc_enabled': False,
                      'scanned': True, 'capture_ns': 21544120},
            'summary': {'garbage_cycles': 2, 'garbage_objects': 5, 'garbage_bytes': 1312,
                        'alive_cycles': 171, 'refcount_leaks': 1, 'leaked_bytes': 3312,
                        'hidden_cycles': 170, 'hidden_leaks': 0},
            'refcount_leaks_checked': True,
            'cycles': [
                {'garbage': True, 'kept_by_leak': False, 'bytes': 784, 'size': 3,
                 'objects': [obj('GraphNode', 0x1a0, 56, 1), obj('dict', 0x1e0, 672, 1),
                             obj('GraphNode', 0x220, 56, 1, True)]},
                {'garbage': True, 'kept_by_leak': False, 'bytes': 528, 'size': 2,
                 'objects': [obj('Edge', 0x300, 56, 2), obj('list', 0x340, 472, 1)]},
                {'garbage': False, 'kept_by_leak': False, 'bytes': 1216, 'size': 2,
                 'objects': [obj('Session', 0x400, 544, 3), obj('dict', 0x440, 672, 1)]}],
            'refcount_leaks': [
                {'type': 'Row', 'address': '0x7f3a40005c0', 'size': 64, 'refcount': 2,
                 'referrers': 0, 'unexplained': 2, 'keeps_alive': {'objects': 7, 'bytes': 3248},
                 'frames': [frame_json('readchunk', 0x7f3a31000000), frame_json('csv', 0x7f3a31000040),
                            frame_json('main', 0x7f3a31000080)]}]}


def big_sample(nnodes, nsnap=4, seed=1):
    """A random tree of nnodes nodes (as a pruned 100k-stack tree), values only."""
    rnd = random.Random(seed)
    frames = [{'function': 'fn_%d' % i if i % 7 else '', 'file': 'src/m%d.c' % (i % 97),
               'line': i % 500, 'module': 'lib%d.so' % (i % 13) if i % 3 else '',
               'kind': 'native' if i % 3 else 'python'} for i in range(6000)]
    parent, frame_of = [-1], [-1]
    for i in range(1, nnodes):
        # mostly under a recent node (deep stacks), sometimes anywhere (breadth)
        p = rnd.randrange(max(0, i - 50), i) if rnd.random() < 0.8 else rnd.randrange(i)
        parent.append(p)
        frame_of.append(rnd.randrange(len(frames)))
    snaps = []
    for s in range(nsnap):
        vals = {}
        for m in ('live', 'peak', 'allocated'):
            b = [int(rnd.paretovariate(1.1) * 100 * (1 + s * (i % 5 == 0))) for i in range(nnodes)]
            for i in range(nnodes - 1, 0, -1):
                b[parent[i]] += b[i]
            vals[m] = {'bytes': b, 'blocks': [x // 100 for x in b]}
        rep = {'total_bytes': vals['live']['bytes'][0], 'total_blocks': 1, 'entries': [],
               'snapshot': {'pid': 1, 'seq': s + 1, 'trigger': 'interval', 'cmdline': ['big']}}
        snaps.append({'path': 'big.%d' % s, 'pid': 1, 'seq': s + 1, 'trigger': 'interval',
                      'label': '', 'time_s': 5.0 * (s + 1), 'values': vals,
                      'report': {k: dict(rep, group_by=k) for k in ('line', 'function', 'file', 'module')},
                      'leaks': None, 'cycles': None})
    return {'schema': 1, 'title': 'memtrail: big', 'generator': 'make_sample.py --big',
            'frames': frames, 'tree': {'parent': parent, 'frame': frame_of},
            'pruned': None, 'snapshots': snaps, 'timeline': None}


def main():
    args = sys.argv[1:]
    if args[:1] == ['--big']:
        data = big_sample(int(args[1]))
        out = args[2]
    else:
        data = small_sample()
        out = args[0] if args else None
    text = json.dumps(data, separators=(',', ':'), ensure_ascii=False)
    if out:
        with open(out, 'w', encoding='utf-8') as f:
            f.write(text + '\n')
    else:
        sys.stdout.write(text + '\n')


if __name__ == '__main__':
    main()
