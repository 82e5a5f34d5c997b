"""Blue/green deploys on one machine (HAProxy, two `bentoml serve` slots); the Kubernetes path."""
