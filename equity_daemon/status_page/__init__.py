"""The status page at `/`: pure functions from the daemon's data to one HTML document.

Server-rendered, no JavaScript: the page reloads itself with `<meta http-equiv="refresh">`, its
chart is inline SVG and its range a link (`?range=1h|24h|7d`). Every string shown goes through
`html.escape`: assets, accounts, problems, notes and errors come from venue data, and a venue is
not to be trusted with markup. It shows what `/snapshot` and `/events` serve (the same
documents), plus the equity history.

    gather.py    what one rendering reads from the daemon (bounded) -> data.StatusData
    page.py      render(): the header, each book, the events, the footer; the sign-in form
    book.py      one book's card       headline.py  its figure, moves and alert band
    chart.py     the SVG chart         events.py    the recent events table
    markup.py    tables and badges     format.py    figures and times as text
    style.py     the one stylesheet (dark mode, phone layout)

Python functions rather than templates: most of the page is figures formatted from decimal
strings and tables built from lists, which a template would only call back into Python for;
one language keeps the escaping in one place, and the tests call each part directly.
"""
