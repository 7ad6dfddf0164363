/* The CPython interpreters the Python tests run on (tests/integration/
 * test_python.c, tests/unit/preload/test_pylayout.c): every pyenv build memtrail
 * supports, and Debian's python3.11 (libpython linked into the executable).
 * A test on an interpreter that is not installed is skipped with
 * "python3.X not found". */
#ifndef MT_PYTHONS_H
#define MT_PYTHONS_H

#include <unistd.h>

typedef struct mt_python {
    const char *tag;     /* in test names: py38 ... py313, py311deb */
    const char *path;    /* the interpreter */
    int minor;           /* 3.minor */
    int bound;           /* libpython's calls to its own functions are bound at link
                          * time (linked into the executable, LTO), not through its PLT */
} mt_python_t;

static const mt_python_t mt_pythons[] = {
    {"py38", "/root/.pyenv/versions/3.8.18/bin/python3.8", 8},
    {"py39", "/root/.pyenv/versions/3.9.18/bin/python3.9", 9},
    {"py310", "/root/.pyenv/versions/3.10.13/bin/python3.10", 10},
    {"py311", "/root/.pyenv/versions/3.11.7/bin/python3.11", 11},
    {"py312", "/root/.pyenv/versions/3.12.1/bin/python3.12", 12},
    {"py313", "/root/.pyenv/versions/3.13.0/bin/python3.13", 13},
    {"py311deb", "/usr/bin/python3.11", 11, 1},
};

#define MT_PY_SKIP_MISSING(py)                                                        \
    do {                                                                              \
        if (access((py)->path, X_OK) != 0)                                            \
            cr_skip_test("python3.%d not found (%s)", (py)->minor, (py)->path);       \
    } while (0)

/* One criterion test per interpreter: SUITE::NAME_py38 ... calling
 * FN(const mt_python_t *) with the test options given after FN. */
#define MT_PY_TEST_ONE(suite, name, tag, idx, fn, ...)                                \
    Test(suite, name##_##tag, __VA_ARGS__)                                            \
    {                                                                                 \
        MT_PY_SKIP_MISSING(&mt_pythons[idx]);                                         \
        fn(&mt_pythons[idx]);                                                         \
    }
#define MT_PY_TESTS(suite, name, fn, ...)                                             \
    MT_PY_TEST_ONE(suite, name, py38, 0, fn, __VA_ARGS__)                             \
    MT_PY_TEST_ONE(suite, name, py39, 1, fn, __VA_ARGS__)                             \
    MT_PY_TEST_ONE(suite, name, py310, 2, fn, __VA_ARGS__)                            \
    MT_PY_TEST_ONE(suite, name, py311, 3, fn, __VA_ARGS__)                            \
    MT_PY_TEST_ONE(suite, name, py312, 4, fn, __VA_ARGS__)                            \
    MT_PY_TEST_ONE(suite, name, py313, 5, fn, __VA_ARGS__)                            \
    MT_PY_TEST_ONE(suite, name, py311deb, 6, fn, __VA_ARGS__)

#endif /* MT_PYTHONS_H */
