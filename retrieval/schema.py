"""The library database's tables (SQLAlchemy 2 declarative), as the Alembic migrations in `migrations/` create them.

Only `store.py` queries them; `migrations/env.py` compares them with the migrations.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: The Alembic revision this code writes; `Store.open` upgrades any older database to it.
SCHEMA_REVISION = "0004"
#: SQLite integer keys must be plain INTEGER to alias the rowid (auto-increment); PostgreSQL gets BIGINT.
Key = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Setting(Base):
    """Library-wide configuration as JSON values (pipeline, active encoder)."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class EncoderRecord(Base):
    """An encoder (name, version) that produced vectors in this library, with its full config."""

    __tablename__ = "encoders"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Mapped[int] = mapped_column(Key, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    dimension: Mapped[int] = mapped_column(Integer)
    config: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Recording(Base):
    """One audio file of the library: where it is, what it is, and whether indexing it worked."""

    __tablename__ = "recordings"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused, even after deletes
    id: Mapped[int] = mapped_column(Key, primary_key=True)
    path: Mapped[str] = mapped_column(String(4096), unique=True)
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    mtime: Mapped[float] = mapped_column(Float)
    duration_s: Mapped[float | None] = mapped_column(Float)
    sample_rate: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[int | None] = mapped_column(Integer)
    codec: Mapped[str | None] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(256), index=True)
    is_reference: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # "indexed" | "failed"
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Window(Base):
    """One analysis window of a recording and its vector; its id is the vector's id in the FAISS index."""

    __tablename__ = "windows"
    __table_args__ = (Index("ix_windows_recording_id_start_s", "recording_id", "start_s"),
                      {"sqlite_autoincrement": True})  # a window id is a FAISS id: never reused
    id: Mapped[int] = mapped_column(Key, primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"))
    encoder_id: Mapped[int] = mapped_column(ForeignKey("encoders.id"), index=True)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian, `dimension` values


class IndexBuild(Base):
    """A FAISS index file written from the stored vectors of one encoder."""

    __tablename__ = "index_builds"
    id: Mapped[int] = mapped_column(Key, primary_key=True)
    encoder_id: Mapped[int] = mapped_column(ForeignKey("encoders.id"))
    index_type: Mapped[str] = mapped_column(String(256))
    vector_count: Mapped[int] = mapped_column(BigInteger)
    file_name: Mapped[str] = mapped_column(String(256))
    params: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ClusterAssignment(Base):
    """The cluster of a recording in the library's latest clustering (its metadata: the `clustering` setting)."""

    __tablename__ = "cluster_assignments"
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"), primary_key=True)
    cluster: Mapped[int] = mapped_column(Integer, index=True)
    distance: Mapped[float] = mapped_column(Float)  # cosine distance to its cluster's centre


class MapCoordinate(Base):
    """A recording's 2-D position in a map of the library, one row per projection method."""

    __tablename__ = "map_points"
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"), primary_key=True)
    method: Mapped[str] = mapped_column(String(16), primary_key=True)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)


class Mark(Base):
    """A listener's verdict on a recording: it is (`is_label`) or is not an example of `label` (the agile loop)."""

    __tablename__ = "marks"
    __table_args__ = (UniqueConstraint("recording_id", "label"),)  # a later verdict on the same label replaces it
    id: Mapped[int] = mapped_column(Key, primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(256))
    is_label: Mapped[bool] = mapped_column(Boolean)
    marked_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
