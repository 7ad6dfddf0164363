#!/usr/bin/env python3
"""Assemble the memtrail html page exactly as the C side does (dev helper).

    assemble.py DATA.json OUT.html [--page-dir analyzer/render/html]

Takes analyzer/render/html/page.html with app.css and the scripts inlined
by the build's own embed.inline() (analyzer/render/html/embed.py), writes the HTML-escaped title and the data as
<script id="memtrail-data" type="application/json">...</script>, with every
'<' in the JSON written as \\u003c so that '</script>' and '<!--' can never
appear inside the element. Each placeholder is a token replaced in place.
"""
import argparse
import html
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE_DIR = os.path.join(HERE, '..', '..', 'analyzer', 'render', 'html')


def embed_json(text):
    # The data is already JSON; re-encoding is not needed, only '<' must go.
    return text.replace('<', '\\u003c')


def assemble(page_dir, data_text):
    sys.path.insert(0, page_dir)
    import embed   # the build's own inlining: the same scripts, in the same order
    page = embed.inline(page_dir).decode('utf-8')
    title = json.loads(data_text).get('title') or 'memtrail'
    data = ('<script id="memtrail-data" type="application/json">'
            + embed_json(data_text.strip()) + '</script>')
    for token, value in (('<!--MEMTRAIL_TITLE-->', html.escape(title, quote=False)),
                         ('<!--MEMTRAIL_DATA-->', data)):
        if token != '<!--MEMTRAIL_TITLE-->' and page.count(token) != 1:
            sys.exit('assemble: page.html must hold %s exactly once' % token)
        # str.replace would be fine too; split/join keeps any backslashes verbatim.
        page = value.join(page.split(token))
    return page


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('data')
    ap.add_argument('out')
    ap.add_argument('--page-dir', default=PAGE_DIR)
    a = ap.parse_args()
    with open(a.data, encoding='utf-8') as f:
        data_text = f.read()
    with open(a.out, 'w', encoding='utf-8') as f:
        f.write(assemble(a.page_dir, data_text))


if __name__ == '__main__':
    main()
