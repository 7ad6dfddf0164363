/* memtrail html: the page script (placeholder, filled in next). */
