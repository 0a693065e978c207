"""bundle-builder: builds recipe bundles into the artifact store and requests their deliveries."""
