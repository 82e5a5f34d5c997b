"""Champion vs challenger on live traffic: routing, guardrails, and the decision by realised error."""
