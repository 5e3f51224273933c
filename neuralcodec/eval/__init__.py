"""Evaluation helpers shared by ``codec demo`` and the benchmarks: classic anchors and scoring."""
