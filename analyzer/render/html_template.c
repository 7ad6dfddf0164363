/* The page template of `memtrail html`: analyzer/render/html/page.html with
 * app.css and the scripts inlined, cut at the slots the program fills (the data,
 * the title) by the build's generator (html/embed.py -> html_page.h). */
#include "html.h"

#include "html_page.h"
