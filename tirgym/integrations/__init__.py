"""Adapters that let other trainers use tirgym envs (TRL, ...). Each imports its peer
package only when used."""
