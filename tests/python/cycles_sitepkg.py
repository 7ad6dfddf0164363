"""A garbage cycle made by an installed package's code, run under `memtrail
run` by tests/integration/test_cycles.c.

The package, mtsitepkg, is written into a temporary site-packages directory
put first on sys.path. Its make() builds a cycle of two Pair instances and
drops every reference to them; gc.disable() comes first and nothing calls
gc.collect(), so the cycle is garbage in the `exit` snapshot. `memtrail
cycles` must show it by default: installed packages are the program's code,
only the standard library and the interpreter are hidden.

Output: "garbage made", "done".
"""
import gc
import os
import shutil
import sys
import tempfile

gc.disable()

PACKAGE = '''
class Pair(object):
    def __init__(self):
        self.other = None


def make():
    a = Pair()
    b = Pair()
    a.other = b
    b.other = a
'''

root = tempfile.mkdtemp()
site = os.path.join(root, "lib", "site-packages")
os.makedirs(os.path.join(site, "mtsitepkg"))
with open(os.path.join(site, "mtsitepkg", "__init__.py"), "w") as f:
    f.write(PACKAGE)
sys.path.insert(0, site)

import mtsitepkg  # noqa: E402

mtsitepkg.make()
print("garbage made")
shutil.rmtree(root)   # the code objects keep their file names
print("done")
