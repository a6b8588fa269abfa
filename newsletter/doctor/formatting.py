"""How ``newsletter doctor`` shows its result: the findings as ``newsletter check`` shows them, and with a
list, a table of its recipients per mailbox provider with the providers' rules the setup fails."""

from __future__ import annotations

import json

from ..checks import format_report, report_json
from .examination import DoctorResult
from .mailbox_providers import failed_rules


def providers_table(result: DoctorResult) -> str:
    """One line per provider: recipients (own domains, hosted by MX), and the rules failed or met."""
    audience = result.audience
    if audience is None:
        return ""
    failing = failed_rules(audience.groups, result.authentication) if result.authentication.checked else {}
    lines = [f"Recipients of list '{audience.list_name}' by mailbox provider ({audience.total:,} in all):"]
    for name, group in audience.groups.items():
        hosted = f" ({group.own:,} at its own domains, {group.hosted:,} hosted by it: MX)" if group.hosted else ""
        if name == "other" or not group.recipients:
            verdict = ""
        elif not result.authentication.checked:
            verdict = "  rules not checked"
        elif name in failing:
            counted = {rule: group.recipients if rule.hosted_too else group.own for rule in failing[name]}
            now = [rule.title for rule, count in counted.items() if count >= max(rule.threshold, 1)]
            later = [rule.title for rule, count in counted.items() if count < max(rule.threshold, 1)]
            verdict = "".join([f"  fails: {'; '.join(now)}" if now else "",
                               f"  would fail at its volume: {'; '.join(later)}" if later else ""])
        else:
            verdict = "  meets its rules"
        lines.append(f"  {name:<11}{group.recipients:>9,}{hosted}{verdict}")
    if audience.mx_not_asked or audience.mx_failure:
        why = f" ({audience.mx_failure})" if audience.mx_failure else ""
        lines.append(f"  {audience.mx_not_asked:,} less common domains were counted as other without asking their "
                     f"MX{why}")
    return "\n".join(lines)


def format_doctor(result: DoctorResult) -> str:
    table = providers_table(result)
    return (table + "\n\n" if table else "") + format_report(result.findings)


def doctor_json(result: DoctorResult) -> str:
    data = json.loads(report_json(result.findings))
    data["authentication"] = result.authentication.to_dict()
    if result.audience is not None:
        data["providers"] = result.audience.to_dict()
    return json.dumps(data, indent=2, ensure_ascii=False)
