"""003 MRMS: dataset profiling (profile) and step-wise scikit-learn training with early stopping
(training).
"""
