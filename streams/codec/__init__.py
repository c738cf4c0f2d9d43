"""Avro codec of PerpLedger's topics: schemas in ``schemas/``, single-object or Confluent framing.

codec = Codec()                                    # single-object framing, project schemas
data = codec.encode({"type": "TradeFill", ...})    # -> bytes
event = codec.decode(data)                         # -> dict with "type"; DecodeError(kind) on bad bytes

codec = Codec(registry=InMemorySchemaRegistry())   # Confluent wire format
"""

from streams.codec.catalog import (
    NAMESPACE,
    RecordSchema,
    SchemaCatalog,
    SchemaCatalogError,
    default_schema_dir,
    fingerprint64,
)
from streams.codec.codec import (
    CONFLUENT,
    SINGLE_OBJECT,
    Codec,
    Framing,
    SubjectStrategy,
    record_name_strategy,
    topic_record_name_strategy,
)
from streams.codec.errors import DECODE_ERROR_KINDS, DecodeError, EncodeError
from streams.codec.plans import bytes_to_int, int_to_bytes
from streams.codec.registry import (
    ConfluentSchemaRegistry,
    InMemorySchemaRegistry,
    RegistryError,
    SchemaNotFoundError,
    SchemaRegistry,
)

__all__ = [
    "CONFLUENT",
    "DECODE_ERROR_KINDS",
    "NAMESPACE",
    "SINGLE_OBJECT",
    "Codec",
    "ConfluentSchemaRegistry",
    "DecodeError",
    "EncodeError",
    "Framing",
    "InMemorySchemaRegistry",
    "RecordSchema",
    "RegistryError",
    "SchemaCatalog",
    "SchemaCatalogError",
    "SchemaNotFoundError",
    "SchemaRegistry",
    "SubjectStrategy",
    "bytes_to_int",
    "default_schema_dir",
    "fingerprint64",
    "int_to_bytes",
    "record_name_strategy",
    "topic_record_name_strategy",
]
