"""Names a sign-off or a reason could not tell apart are refused when a policy is loaded,
naming file, line and field: a blank sign-off role (no one can sign it: the decision
would block for good), a role required twice, two behaviours of one name, a blank
criterion id. A policy read back from a record is still read as it was made."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hilt.errors import InputError
from hilt.gate.evaluate import evaluate_signoffs
from hilt.gate.policy import load_policy, policy_from_dict

BEHAVIOUR = """  - name: NAME
    description: d
    metric: benign_refusal_rate
    decision_rule: r
    regression_metric: m
    criteria:
      - {id: ID, kind: max_delta, metric: benign_refusal_rate, max: 0.02}
"""


def _policy(behaviours: str, signoffs: str = "") -> str:
    return 'id: t\nversion: "1"\nbehaviours:\n' + behaviours + signoffs


@pytest.mark.parametrize("text, line, field, message", [
    (_policy(BEHAVIOUR.replace("NAME", "b").replace("ID", "c"),
             'signoffs: [{role: ""}]\n'), 11, "signoffs.0.role", "must not be blank"),
    (_policy(BEHAVIOUR.replace("NAME", "b").replace("ID", "c"),
             "signoffs:\n  - {role: release_owner}\n  - {role: release_owner}\n"),
     13, "signoffs.1.role", "required twice"),
    (_policy(BEHAVIOUR.replace("NAME", "b").replace("ID", "c")
             + BEHAVIOUR.replace("NAME", "b").replace("ID", "d")),
     11, "behaviours.1.name", "used twice"),
    (_policy(BEHAVIOUR.replace("NAME", "b").replace("ID", '" "')),
     10, "behaviours.0.criteria.0.id", "must not be blank"),
])
def test_names_that_cannot_be_told_apart_are_refused(tmp_path: Path, text: str, line: int,
                                                     field: str, message: str) -> None:
    path = tmp_path / "pol.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        load_policy(path)
    assert (err.value.file, err.value.line, err.value.field) == (str(path), line, field)


def test_a_recorded_policy_with_a_repeated_role_reads_as_made() -> None:
    data = yaml.safe_load(_policy(BEHAVIOUR.replace("NAME", "b").replace("ID", "c"),
                                  "signoffs: [{role: x}, {role: x}]\n"))
    with pytest.raises(InputError):
        policy_from_dict(data)
    policy = policy_from_dict(data, recorded=True)
    # two entries of one role need two people, as count: 2 does
    one = evaluate_signoffs(policy, {"signoffs": [{"role": "x", "by": "ana"}]})
    two = evaluate_signoffs(policy, {"signoffs": [{"role": "x", "by": "ana"},
                                                  {"role": "x", "by": "bo"}]})
    assert (one["status"], two["status"]) == ("block", "pass")
