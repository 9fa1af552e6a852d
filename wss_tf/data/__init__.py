"""Data: DeepLab TFRecords, dataset builders, the official augmentation pipelines, a generated dataset."""
