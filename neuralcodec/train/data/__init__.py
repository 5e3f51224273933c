"""Data modules for codec training."""

from neuralcodec.train.data.audio import AudioFolderDataModule, AudioSegmentDataset, list_audio_files
from neuralcodec.train.data.files import find_files, split_by_key
from neuralcodec.train.data.images import ImageCropDataset, ImageFolderDataModule, list_image_files

__all__ = ["AudioFolderDataModule", "AudioSegmentDataset", "ImageCropDataset", "ImageFolderDataModule",
           "find_files", "list_audio_files", "list_image_files", "split_by_key"]
