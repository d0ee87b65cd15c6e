"""FaceSynth's built-in plugins: emotions and backends, written as any third-party plugin would be."""
