"""Changes to workflow code that alter the commands a running workflow issues, by ``workflow.patched`` id.

Workflows started before a change replay the old branch (tests/histories holds such histories); once
no workflow from before a change is open (after the edition's expo has closed), its old branch and then
its id can go (``workflow.deprecate_patch``)."""

# A staff decision is answered as soon as the workflow has taken it, and written to the review log and
# the read model after, both at once; a payment's queue entry and status are written at once; a unit
# tells all its members of a change at once.
ANSWER_BEFORE_RECORDS = "answer-before-records-2026-11"
