/* Test library for test_gotpatch: the functions gotvictim imports, one
 * called through the PLT and one whose address is taken (GOT). */
int gv_target(void);
int gv_data_target(void);

int gv_target(void)
{
    return 1;
}

int gv_data_target(void)
{
    return 3;
}
