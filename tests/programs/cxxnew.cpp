/* cxxnew: C++ allocation through operator new / new[] / std::allocator,
 * run under memtrail by tests/integration/test_native.c.
 *
 * Expected exit snapshot (live bytes / live blocks):
 *   make_widget   120 / 3    3 x new Widget (sizeof(Widget) == 40), kept;
 *                            stack: _Znwm (libstdc++), make_widget, main
 *   make_array    400 / 1    new int[100], kept; stack: _Znwm, _Znam, make_array
 *   churn           0 / 0    1000 x (new Widget; delete): allocated in total
 *                            40000 bytes / 1000 blocks
 *   make_vector  4000 / 1    std::vector<int>::reserve(1000) on a vector that
 *                            is never destroyed. At -O0 the innermost non-
 *                            allocator frame is the std::__new_allocator<int>::
 *                            allocate instantiation, so the test looks for
 *                            make_vector in ANY frame of the stack.
 * The vector lives in static storage built with placement new and is never
 * destroyed: a global std::vector would be destroyed by exit() before the
 * exit snapshot is written. Site functions are extern "C" so their symbols
 * are not mangled. Exit status 0.
 */
#include <cstdint>
#include <new>
#include <vector>

#define NOINLINE __attribute__((noinline))

struct Widget {
    std::uint64_t a, b, c, d, e;
};
static_assert(sizeof(Widget) == 40, "Widget is 40 bytes");

static Widget *g_widgets[3];
static int *g_array;
alignas(std::vector<int>) static unsigned char g_vec_storage[sizeof(std::vector<int>)];
static std::vector<int> *g_vec;

extern "C" {
Widget *make_widget(std::uint64_t i);
int *make_array(void);
void churn(void);
void make_vector(void);
}

extern "C" NOINLINE Widget *make_widget(std::uint64_t i)
{
    Widget *w = new Widget();
    w->a = i;
    return w;
}

extern "C" NOINLINE int *make_array(void)
{
    int *a = new int[100];
    for (int i = 0; i < 100; i++)
        a[i] = i;
    return a;
}

extern "C" NOINLINE void churn(void)
{
    for (std::uint64_t i = 0; i < 1000; i++) {
        Widget *volatile w = new Widget();
        w->e = i;
        delete w;
    }
}

extern "C" NOINLINE void make_vector(void)
{
    g_vec = new (g_vec_storage) std::vector<int>();
    g_vec->reserve(1000);
}

int main()
{
    for (std::uint64_t i = 0; i < 3; i++)
        g_widgets[i] = make_widget(i);
    g_array = make_array();
    churn();
    make_vector();
    if (g_vec->capacity() != 1000 || g_array[99] != 99 || g_widgets[2]->a != 2)
        return 1;
    return 0;
}
