"""The bundled AnyTalker model: Audio-Face Cross Attention video DiT (see docs/model.md).

Modules: ``config`` (YAML configs, frame arithmetic), ``audio`` (front ends), ``face_encoder``,
``masks`` + ``afca`` (the AFCA block), ``dit`` (the transformer), ``flow`` (loss + sampler),
``data`` (shards -> batches), ``train``, ``generate``, ``checkpoint``, ``shard_reader``.
"""
