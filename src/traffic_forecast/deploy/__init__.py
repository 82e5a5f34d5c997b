"""Blue/green deploys on one machine (nginx, two `bentoml serve` slots) and the Kubernetes path."""
