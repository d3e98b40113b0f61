"""The shape of an invariant report: named checks, each passed or failed with examples."""

from dataclasses import asdict, dataclass, field

# Violations kept per check as examples, so a report on a large, broken
# dataset stays readable. The count of violations is always exact.
MAX_VIOLATIONS_SHOWN = 20


@dataclass(frozen=True)
class Violation:
    """One concrete breach: the ids involved and what is wrong with them."""

    message: str
    ids: dict[str, str]


@dataclass
class CheckResult:
    """The outcome of one named check."""

    name: str
    description: str
    rows_checked: int = 0
    violation_count: int = 0
    violations: list[Violation] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.violation_count == 0

    def add(self, message: str, **ids: str) -> None:
        """Count a violation, and keep it as an example while fewer than the cap are kept."""
        self.violation_count += 1
        if len(self.violations) < MAX_VIOLATIONS_SHOWN:
            self.violations.append(Violation(message=message, ids={key: str(value) for key, value in ids.items()}))

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "passed": self.passed,
            "rows_checked": self.rows_checked,
            "violation_count": self.violation_count,
            "violations": [asdict(violation) for violation in self.violations],
        }


@dataclass
class InvariantReport:
    """Every check's result, in the order they ran, for one tenant or all."""

    tenant_id: str | None
    checks: list[CheckResult]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failed_checks(self) -> list[str]:
        return [check.name for check in self.checks if not check.passed]

    def check(self, name: str) -> CheckResult:
        """Return the result of the check called ``name``; raise ``KeyError`` when there is none."""
        for result in self.checks:
            if result.name == name:
                return result
        raise KeyError(name)

    def as_dict(self) -> dict:
        return {
            "tenant_id": self.tenant_id,
            "passed": self.passed,
            "checks": [check.as_dict() for check in self.checks],
        }
