/* Test library for test_gotpatch: what libgotcaller dlopens by bare name,
 * found only through libgotcaller's DT_RUNPATH/DT_RPATH. */
int gd_value(void);

int gd_value(void)
{
    return 42;
}
