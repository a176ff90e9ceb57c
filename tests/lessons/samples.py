"""Lesson texts the lesson tests share."""

# A lesson whose first check expects the wrong thing: the command is pid 2 (under the sandbox's
# init), the lesson says 1. Its verdict must be FAILED, with what was seen.
WRONG = '''
name = "wrong"
title = "A wrong expectation"
layer = "pid"
summary = "the command is pid 2, the lesson says 1"
explanation = "e"
look = [{ pane = "output", what = "the pid" }]
[[steps]]
name = "on"
title = "the default profile"
command = ["sh", "-c", "echo my pid: $$"]
[[steps.checks]]
what = "the command believes it is pid 1"
stdout_matches = "my pid: 1$"
[[steps.checks]]
what = "it exits 0"
expect = { exit_code = 0 }
'''
