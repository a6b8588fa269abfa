"""Ways mail leaves: one package per provider behind the contract (``base.Provider``, the provider once
opened; ``contract.ProviderKind``, everything else about it), reached by name through ``registry``."""
