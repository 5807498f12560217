"""Dependency audit: pip-audit over the installed environment, against PyPI's vulnerability data.

Exit 0 when no known vulnerability is found (or every finding is listed, with a reason, in
requirements/audit-ignore.txt), 1 when one is found, and 0 with a "skipped" message when the
vulnerability database cannot be reached (machines without PyPI access), so that offline
machines are not failed for what they cannot check. Writes runs/audit.json either way.

    .venv/bin/python scripts/audit.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IGNORE_FILE = ROOT / "requirements" / "audit-ignore.txt"
UNREACHABLE = ("ConnectionError", "Max retries exceeded", "Temporary failure in name resolution", "timed out")


def ignored_ids() -> dict[str, str]:
    """`ID  reason` per line; a finding is accepted only with a written reason."""
    if not IGNORE_FILE.is_file():
        return {}
    entries = {}
    for line in IGNORE_FILE.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            vuln_id, _, reason = line.partition(" ")
            entries[vuln_id] = reason.strip()
    return entries


def main() -> int:
    pip_audit = Path(sys.executable).with_name("pip-audit")
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "audit.json"
        done = subprocess.run(
            [
                str(pip_audit),
                "--skip-editable",
                "--progress-spinner",
                "off",
                "--format",
                "json",
                "-o",
                str(report_path),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if not report_path.is_file():
            if any(marker in done.stderr for marker in UNREACHABLE):
                print("audit skipped: the vulnerability database (PyPI) cannot be reached from this machine")
                return 0
            print(f"audit failed to run (exit {done.returncode}):\n{done.stderr[-2000:]}", file=sys.stderr)
            return 3
        report = json.loads(report_path.read_text(encoding="utf-8"))
    out = ROOT / "runs" / "audit.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    accepted = ignored_ids()
    findings = [
        (dep["name"], dep["version"], vuln["id"], vuln.get("fix_versions", []))
        for dep in report["dependencies"]
        for vuln in dep.get("vulns", [])
        if vuln["id"] not in accepted and not set(vuln.get("aliases", [])) & accepted.keys()
    ]
    checked = sum(1 for dep in report["dependencies"] if "skip_reason" not in dep)
    if report["dependencies"] and not checked:
        # The package index answers installs but not PyPI's JSON API (a mirror): nothing can be looked up.
        reason = report["dependencies"][0]["skip_reason"]
        print(f"audit skipped: the vulnerability data cannot be reached from this machine ({reason})")
        return 0
    if findings:
        for name, version, vuln_id, fixes in findings:
            print(f"{name} {version}: {vuln_id} (fixed in {', '.join(fixes) or 'no release yet'})")
        print(f"audit: {len(findings)} known vulnerabilities in {checked} packages (details: {out})")
        return 1
    print(f"audit: no known vulnerabilities in {checked} packages ({len(accepted)} accepted in {IGNORE_FILE.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
