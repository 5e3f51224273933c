"""Data modules for codec training."""

from neuralcodec.train.data.audio import AudioFolderDataModule, AudioSegmentDataset, list_audio_files, split_files
from neuralcodec.train.data.images import ImageCropDataset, ImageFolderDataModule, list_image_files

__all__ = ["AudioFolderDataModule", "AudioSegmentDataset", "ImageCropDataset", "ImageFolderDataModule",
           "list_audio_files", "list_image_files", "split_files"]
