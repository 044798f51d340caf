"""Human review: rubrics, escalation, triage, assignment, reviews and adjudication."""
