/* Test library for test_gotpatch: imports gv_target through its PLT
 * (R_X86_64_JUMP_SLOT) and takes the address of gv_data_target (GOT,
 * R_X86_64_GLOB_DAT). Built with and without -z now. */
int gv_target(void);
int gv_data_target(void);
int gv_call(void);
int (*gv_data_addr(void))(void);

int gv_call(void)
{
    return gv_target();
}

int (*gv_data_addr(void))(void)
{
    return &gv_data_target;
}
