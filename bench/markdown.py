"""Markdown pieces the report is made of: tables and figures formatted for reading."""


def table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join("" if c is None else str(c) for c in row) + " |" for row in rows] + [""]


def num(value, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if isinstance(value, (int, float)) else str(value)


def figure(value) -> str:
    """A figure with as many decimals as its size needs: 0.034, 29.7, 1,009."""
    if value is None:
        return "-"
    return num(value, 3 if abs(value) < 1 else 1 if abs(value) < 100 else 0)


def cpu_rows(cpu: dict) -> str:
    return ", ".join(f"{name} {cores:.2f}" for name, cores in sorted(cpu.items(), key=lambda kv: -kv[1]))
