"""003 MRMS persistence: projects, datasets, parameter sets, learning histories (models) and every read and
write of them (repository).
"""
