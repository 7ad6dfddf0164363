# sys._debugmallocstats() prints the same sections traced as bare (CPython's
# test_sys.test_debugmallocstats); the function still takes no argument.
import sys

sys._debugmallocstats()
try:
    sys._debugmallocstats(True)
except TypeError:
    print("TypeError")
print(sys._debugmallocstats.__name__, sys._debugmallocstats.__module__)
