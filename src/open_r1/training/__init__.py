"""The smallest layer over TRL: model/processor loading, trainer wiring, resume and safety callbacks."""
