"""b4's own code, driven as `b4 review` drives it: a series from an mbox taken into a
review branch (b4.review.create_review_branch, after git-am in b4's worktree), then the
series checks configured in git config run through b4.review.checks (run_series_checks ->
_run_external_cmd, with B4_TRACKING_FILE as the TUI's _fetch_and_check writes it), stored
in and read back from b4's check cache, and the details rendered as the TUI's results
screen renders them. Prints one JSON object for orchestrator/tests/b4_check.rs.

usage: python check.py TOPDIR MBOX BASE-COMMIT
"""
import io
import json
import os
import sys
import tempfile

import b4
import b4.command
import b4.review
import b4.review.checks as checks

topdir, mbox, base = sys.argv[1:4]
os.chdir(topdir)
# As `b4 --offline-mode review tui` starts: its configuration from git config.
cmdargs = b4.command.setup_parser().parse_args(['--offline-mode', 'review', 'tui'])
b4.setup_config(cmdargs)
b4.can_network = False

msgs = b4.get_msgs_from_mailbox_or_maildir(mbox)
lser = b4.review._get_lore_series(msgs)
am_msgs = lser.get_am_ready(noaddtrailers=True, addmysob=False, addlink=False,
                            cherrypick=None, copyccs=False, allowbadchars=False,
                            showchecks=False)
ifh = io.BytesIO()
b4.save_git_am_mbox(am_msgs, ifh)
linkmask = 'https://example.org/r/%s'
top_msgid = next(m.msgid for m in lser.patches if m is not None)
linkurl = linkmask % top_msgid
b4.git_fetch_am_into_repo(topdir, ambytes=ifh.getvalue(), at_base=base,
                          origin=linkurl, am_flags=['-3'])
branch = 'b4/review/' + lser.change_id if lser.change_id else 'b4/review/fixture'
b4.review.create_review_branch(topdir, branch, base, lser, linkurl, linkmask,
                               num_prereqs=0, identifier=None, status='reviewing')

# As the TUI's _fetch_and_check does it.
perpatch_cmds, series_cmds = checks.load_check_cmds()
_cover, tracking = b4.review.load_tracking(topdir, branch)
fd, tracking_file = tempfile.mkstemp(prefix='b4-tracking-', suffix='.json')
with os.fdopen(fd, 'w') as fp:
    json.dump(tracking, fp, indent=2)
cover = lser.patches[0]
cover_msg = next(m for m in msgs if m.get('message-id', '').strip('<> ') == cover.msgid)
results = checks.run_series_checks((cover.msgid, cover_msg), series_cmds, topdir,
                                   extra_env={'B4_TRACKING_FILE': tracking_file})
os.unlink(tracking_file)
conn = checks.get_db()
checks.store_results(conn, cover.msgid, results)
cached = checks.get_cached_results(conn, [cover.msgid]).get(cover.msgid, [])
conn.close()

# What the results screen shows for each result's details.
from rich.text import Text
from b4.review_tui._modals import TrackingCheckResultsScreen


class _Screen:
    _STATUS_DOTS = TrackingCheckResultsScreen._STATUS_DOTS


rendered = []
for r in cached:
    body = Text()
    TrackingCheckResultsScreen._render_detail_lines(_Screen(), body, r.get('details', ''))
    rendered.append(body.plain)

print(json.dumps({
    'branch': branch,
    'series_cmds': series_cmds,
    'tracking_base': tracking['series']['base-commit'],
    'results': results,
    'cached': cached,
    'rendered': rendered,
}))
